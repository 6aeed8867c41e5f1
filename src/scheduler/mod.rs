//! The scheduler: binds pending pods of the default scheduler to nodes through `pods/binding`.

/// Runs the scheduler until its task is aborted.
pub async fn run(_client: kube::Client) {
    futures::future::pending::<()>().await
}
