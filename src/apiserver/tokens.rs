//! ServiceAccount tokens: ES256 JWTs signed with the cluster's service-account key, issued by
//! TokenRequest (`kubectl create token`) and accepted as `Authorization: Bearer` credentials while
//! the service account (and the object the token is bound to) still exists with the same uid.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{SecondsFormat, Utc};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

use super::objects::Ctx;
use super::{ApiServer, UserInfo};
use crate::api::registry;
use crate::api::status::{Cause, StatusError};

/// The default issuer and audience, as upstream's for a cluster domain of cluster.local.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const DEFAULT_EXPIRY: i64 = 3600;
const MIN_EXPIRY: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: not a usable ECDSA P-256 PKCS#8 key")]
    BadKey(String),
    #[error("signing failed")]
    Sign,
    #[error("invalid token: {0}")]
    Invalid(&'static str),
}

pub struct TokenSigner {
    key: EcdsaKeyPair,
    kid: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

impl TokenSigner {
    /// Load the signing key at `path`, creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> Result<TokenSigner, TokenError> {
        let what = path.display().to_string();
        let rng = SystemRandom::new();
        let der = match std::fs::read(path) {
            Ok(bytes) => {
                let mut reader = std::io::Cursor::new(bytes);
                match rustls_pemfile::private_key(&mut reader) {
                    Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k))) => k.secret_pkcs8_der().to_vec(),
                    _ => return Err(TokenError::BadKey(what)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| TokenError::BadKey(what.clone()))?;
                crate::pki::write_private_file(path, pem("PRIVATE KEY", doc.as_ref()).as_bytes(), 0o600)
                    .map_err(|e| TokenError::Io { path: what.clone(), source: std::io::Error::other(e.to_string()) })?;
                doc.as_ref().to_vec()
            }
            Err(source) => return Err(TokenError::Io { path: what, source }),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| TokenError::BadKey(what))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
        Ok(TokenSigner { key, kid })
    }

    pub fn sign(&self, claims: &Value) -> Result<String, TokenError> {
        let header = json!({ "alg": "ES256", "kid": self.kid, "typ": "JWT" });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self.key.sign(&SystemRandom::new(), signing_input.as_bytes()).map_err(|_| TokenError::Sign)?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// Check signature, time window and audience; return the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Value, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Invalid("not a JWT"));
        };
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Invalid("bad signature encoding"))?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| TokenError::Invalid("signature does not verify"))?;
        let claims: Value = URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Invalid("bad claims"))?;
        if claims["iss"] != ISSUER {
            return Err(TokenError::Invalid("wrong issuer"));
        }
        if claims["exp"].as_i64().is_none_or(|e| e <= now) || claims["nbf"].as_i64().is_some_and(|n| n > now + 60) {
            return Err(TokenError::Invalid("expired or not yet valid"));
        }
        let aud_ok = claims["aud"].as_array().is_some_and(|a| a.iter().any(|x| x == ISSUER));
        if !aud_ok {
            return Err(TokenError::Invalid("not meant for this API server"));
        }
        Ok(claims)
    }
}

async fn object(api: &ApiServer, plural: &str, ns: &str, name: &str) -> Option<Value> {
    let def = registry::find("", "v1", plural)?;
    api.cache.get(&def.key(Some(ns), name)).await.ok()??.value().ok()
}

fn uid(v: &Value) -> &str {
    v.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default()
}

/// `Authorization: Bearer <token>`: the service account it names, if it is valid and every
/// object it refers to still exists with the same uid.
pub async fn authenticate(api: &ApiServer, token: &str) -> Option<UserInfo> {
    let signer = api.tokens.as_ref()?;
    let claims = signer.verify(token, Utc::now().timestamp()).ok()?;
    let k = &claims["kubernetes.io"];
    let ns = k["namespace"].as_str()?;
    let sa = k.pointer("/serviceaccount/name")?.as_str()?;
    let current = object(api, "serviceaccounts", ns, sa).await?;
    if uid(&current) != k.pointer("/serviceaccount/uid")?.as_str()? {
        return None;
    }
    for (plural, field) in [("pods", "pod"), ("secrets", "secret")] {
        if let Some(bound) = k.get(field) {
            let obj = object(api, plural, ns, bound["name"].as_str()?).await?;
            if uid(&obj) != bound["uid"].as_str()? {
                return None;
            }
        }
    }
    Some(UserInfo {
        name: format!("system:serviceaccount:{ns}:{sa}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    })
}

/// `POST serviceaccounts/<name>/token` (TokenRequest).
pub async fn request(ctx: &Ctx, name: &str, body: &Value) -> Result<Value, StatusError> {
    let ns = ctx.ns.clone().unwrap_or_default();
    let signer = ctx.api.tokens.as_ref().ok_or_else(|| StatusError::unavailable("token signing is not configured"))?;
    let sa = object(&ctx.api, "serviceaccounts", &ns, name)
        .await
        .ok_or_else(|| StatusError::not_found("", "serviceaccounts", name))?;
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let invalid = |c: Cause| StatusError::invalid("authentication.k8s.io", "TokenRequest", name, vec![c]);
    let expiry = spec.get("expirationSeconds").and_then(Value::as_i64).unwrap_or(DEFAULT_EXPIRY);
    if expiry < MIN_EXPIRY {
        return Err(invalid(Cause::invalid(
            "spec.expirationSeconds",
            &json!(expiry),
            "may not specify a duration less than 10 minutes",
        )));
    }
    if expiry > 1 << 32 {
        return Err(invalid(Cause::invalid(
            "spec.expirationSeconds",
            &json!(expiry),
            "may not specify a duration larger than 2^32 seconds",
        )));
    }
    let mut audiences: Vec<Value> = spec.get("audiences").and_then(Value::as_array).cloned().unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(json!(ISSUER));
    }
    let now = Utc::now().timestamp();
    let mut k = json!({ "namespace": ns, "serviceaccount": { "name": name, "uid": uid(&sa) } });
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| b.is_object()) {
        let kind = bound["kind"].as_str().unwrap_or_default();
        let bname = bound["name"].as_str().unwrap_or_default();
        let (plural, field) = match kind {
            "Pod" => ("pods", "pod"),
            "Secret" => ("secrets", "secret"),
            other => {
                return Err(invalid(Cause::not_supported(
                    "spec.boundObjectRef.kind",
                    &json!(other),
                    &["Pod", "Secret"],
                )));
            }
        };
        let obj =
            object(&ctx.api, plural, &ns, bname).await.ok_or_else(|| StatusError::not_found("", plural, bname))?;
        if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty()) {
            if want != uid(&obj) {
                return Err(StatusError::conflict(
                    "",
                    plural,
                    bname,
                    "the UID in the bound object reference does not match",
                ));
            }
        }
        k[field] = json!({ "name": bname, "uid": uid(&obj) });
    }
    let claims = json!({
        "iss": ISSUER, "aud": audiences, "sub": format!("system:serviceaccount:{ns}:{name}"),
        "iat": now, "nbf": now, "exp": now + expiry, "kubernetes.io": k,
    });
    let token = signer.sign(&claims).map_err(|e| StatusError::internal(e.to_string()))?;
    let exp = chrono::DateTime::from_timestamp(now + expiry, 0)
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(SecondsFormat::Secs, true);
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "name": name, "namespace": ns, "creationTimestamp": null },
        "spec": { "audiences": claims["aud"], "expirationSeconds": expiry, "boundObjectRef": spec.get("boundObjectRef").cloned().unwrap_or(Value::Null) },
        "status": { "token": token, "expirationTimestamp": exp },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.key");
        let s = TokenSigner::load_or_create(&path).unwrap();
        let now = Utc::now().timestamp();
        let claims = json!({"iss": ISSUER, "aud": [ISSUER], "exp": now + 60, "nbf": now, "kubernetes.io": {}});
        let t = s.sign(&claims).unwrap();
        assert_eq!(s.verify(&t, now).unwrap()["exp"], now + 60);
        let again = TokenSigner::load_or_create(&path).unwrap();
        assert!(again.verify(&t, now).is_ok(), "the key survives a restart");
        assert!(s.verify(&t, now + 61).is_err(), "expired");
        let other = json!({"iss": ISSUER, "aud": ["someone-else"], "exp": now + 60});
        assert!(s.verify(&s.sign(&other).unwrap(), now).is_err(), "wrong audience");
        let mut forged = t.clone();
        forged.replace_range(t.len() - 4.., "AAAA");
        assert!(s.verify(&forged, now).is_err());
        let other_key = TokenSigner::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other_key.verify(&t, now).is_err());
    }
}
