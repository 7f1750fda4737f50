//! Who is calling (DESIGN.md §8), as the API's handlers state what they
//! need: [`Reader`], [`Writer`] or [`Root`]; [`crate::access`] decides.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::domain::auth::{Access, Caller};
use crate::state::AppState;

macro_rules! access_extractor {
    ($(#[$doc:meta])* $name:ident, $access:expr) => {
        $(#[$doc])*
        pub struct $name(pub Caller);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                app: &AppState,
            ) -> Result<Self, Self::Rejection> {
                app.auth
                    .authorize(&parts.headers, $access)
                    .await
                    .map($name)
                    .map_err(ApiError::from)
            }
        }
    };
}

access_extractor!(
    /// A caller that may read its tenant's jobs and runs.
    Reader,
    Access::Read
);
access_extractor!(
    /// A caller that may change its tenant's jobs and read their secrets.
    Writer,
    Access::Write
);
access_extractor!(
    /// A caller that may scrape `/metrics`: root, or the `metrics` scope.
    MetricsReader,
    Access::Metrics
);
access_extractor!(
    /// A root caller: tokens, instances.
    Root,
    Access::Root
);
