//! The in-process kube-rs client: a tower service that hands requests to
//! [`ApiServer::handle`] without a socket, under kelp's internal identity. The scheduler,
//! controllers and the local agent use it; they pass through the same handlers, admission and
//! authorization as remote clients.

use std::sync::Arc;

use http::{header, Request, Response};

use super::{error_response, read_body, ApiServer, Body, UserInfo};

/// A kube-rs client reaching `api` in-process as `user`.
pub fn in_process_client_as(api: Arc<ApiServer>, user: UserInfo) -> kube::Client {
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let api = api.clone();
        let user = user.clone();
        async move {
            let (parts, body) = req.into_parts();
            let len =
                parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            let resp: Response<Body> = match read_body(body, len).await {
                Ok(bytes) => api.handle(Request::from_parts(parts, bytes), Some(user)).await,
                Err(e) => error_response(&e),
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    kube::Client::new(service, "default")
}

/// A kube-rs client reaching `api` in-process with kelp's internal identity.
pub fn in_process_client(api: Arc<ApiServer>) -> kube::Client {
    in_process_client_as(api, UserInfo::internal())
}
