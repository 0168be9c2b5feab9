//! Authentication: which user a request comes from, decided the way kube-apiserver's bearer-token
//! authenticators and anonymous authentication decide it.
//!
//! ```text
//!   Authorization: Bearer <token>
//!      ├─ the kubeconfig's admin token ──► wsgate-test-admin   [system:masters, system:authenticated]
//!      ├─ a token issued for a ServiceAccount that still exists (same uid)
//!      │                               ──► system:serviceaccount:NS:NAME
//!      │                                   [system:serviceaccounts, system:serviceaccounts:NS, system:authenticated]
//!      └─ any other token              ──► 401 Unauthorized (an invalid credential is never anonymous)
//!   no bearer token (or another scheme) ──► system:anonymous   [system:unauthenticated]
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use crate::catalog::StorageKey;
use crate::meta;
use crate::status::ApiError;
use crate::store::State;

/// The bearer token of the kubeconfig `TestApiServer::kubeconfig()` writes.
pub const ADMIN_TOKEN: &str = "wsgate-test-token";
/// The user that token authenticates as (in `system:masters`, so every request is allowed).
pub const ADMIN_USER: &str = "wsgate-test-admin";
/// The group whose members the privileged-group authorizer allows everything.
pub const MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of requests without credentials.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// The user a request is made as: a name and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The all-powerful user of the admin token.
    pub fn admin() -> UserInfo {
        UserInfo { name: ADMIN_USER.into(), groups: vec![MASTERS.into(), AUTHENTICATED.into()] }
    }

    /// The user of a request without credentials.
    pub fn anonymous() -> UserInfo {
        UserInfo { name: ANONYMOUS.into(), groups: vec![UNAUTHENTICATED.into()] }
    }

    /// The user a ServiceAccount's token authenticates as.
    pub fn service_account(namespace: &str, name: &str) -> UserInfo {
        UserInfo {
            name: service_account_user(namespace, name),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// `system:serviceaccount:NAMESPACE:NAME`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The ServiceAccount a token was issued for, pinned to its uid (a recreated account does not
/// inherit the old account's tokens, as bound tokens carry the uid).
#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    uid: String,
}

/// Tokens issued for ServiceAccounts, shared by every connection.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
}

fn service_accounts() -> StorageKey {
    StorageKey { group: String::new(), resource: "serviceaccounts".into() }
}

impl Tokens {
    /// Issues a new token for the ServiceAccount `namespace/name`; `None` when it does not exist
    /// (the TokenRequest API answers 404 then).
    pub fn issue(&self, st: &State, namespace: &str, name: &str) -> Option<String> {
        let account = st.get(&service_accounts(), namespace, name)?;
        let uid = meta::meta_str(&account, "uid").to_string();
        let token = format!("wsgate-sa.{:016x}{:016x}", meta::random_u64(), meta::random_u64());
        let issued = Issued { namespace: namespace.into(), name: name.into(), uid };
        self.issued.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), issued);
        Some(token)
    }

    /// The user of a request with this `Authorization` header value (absent: anonymous).
    pub fn authenticate(&self, st: &State, authorization: Option<&str>) -> Result<UserInfo, ApiError> {
        let Some(token) = authorization.and_then(bearer_token) else { return Ok(UserInfo::anonymous()) };
        if token == ADMIN_TOKEN {
            return Ok(UserInfo::admin());
        }
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned();
        let Some(issued) = issued else { return Err(ApiError::unauthorized()) };
        // A token outlives nothing: its ServiceAccount must still exist, with the same uid.
        let account = st.get(&service_accounts(), &issued.namespace, &issued.name);
        match account {
            Some(a) if meta::meta_str(&a, "uid") == issued.uid => {
                Ok(UserInfo::service_account(&issued.namespace, &issued.name))
            }
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive); `None` for other schemes and empty
/// tokens, which the bearer authenticator passes on to the next one (here: anonymous).
fn bearer_token(header: &str) -> Option<&str> {
    let mut parts = header.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_like_the_real_authenticator() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc extra"), Some("abc"));
        assert_eq!(bearer_token("  BEARER abc  "), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn users_carry_the_real_groups() {
        let sa = UserInfo::service_account("apps", "ctrl");
        assert_eq!(sa.name, "system:serviceaccount:apps:ctrl");
        assert_eq!(sa.groups, ["system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated"]);
        assert!(UserInfo::admin().in_group(MASTERS));
        assert_eq!(UserInfo::anonymous().groups, [UNAUTHENTICATED]);
    }
}
