//! The private daemon's API over its unix socket: bollard on a current-thread tokio runtime
//! built per driver call (the `Driver` trait is synchronous), every request bounded.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;

use crate::DriverError;

/// The bound on a plain request (inspect, list, create).
pub(crate) const REQUEST: Duration = Duration::from_secs(30);
/// The bound on a ping deciding whether the daemon runs.
pub(crate) const PING: Duration = Duration::from_secs(2);

/// A failed request.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The daemon answered 404: no such container or image.
    NotFound(String),
    /// Anything else, as a message.
    Failed(String),
}

impl ApiError {
    /// What the daemon said.
    pub(crate) fn message(&self) -> &str {
        match self {
            ApiError::NotFound(m) | ApiError::Failed(m) => m,
        }
    }

    /// As a driver error, saying what was asked.
    pub(crate) fn into_driver(self, what: impl Into<String>) -> DriverError {
        let message = match self {
            ApiError::NotFound(m) | ApiError::Failed(m) => m,
        };
        DriverError::Docker {
            what: what.into(),
            message,
        }
    }
}

/// A client of one private daemon.
pub(crate) struct Api {
    rt: tokio::runtime::Runtime,
    /// The bollard client (requests are sent only when a future is run).
    pub docker: Docker,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

impl Api {
    /// A client for the daemon on `socket`. No request is sent yet.
    pub(crate) fn new(socket: &Path) -> Result<Api, DriverError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DriverError::io("build a tokio runtime for the docker api", e))?;
        let path = socket.to_str().ok_or_else(|| {
            DriverError::Refused(format!(
                "docker socket path {} is not valid UTF-8",
                socket.display()
            ))
        })?;
        // The client's own timeout is a backstop; each request has its own bound.
        let docker =
            Docker::connect_with_unix(path, 3600, bollard::API_DEFAULT_VERSION).map_err(|e| {
                DriverError::Docker {
                    what: format!("connect to {}", socket.display()),
                    message: e.to_string(),
                }
            })?;
        Ok(Api { rt, docker })
    }

    /// Run one request within `limit`.
    pub(crate) fn run<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, ApiError> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await })
        {
            Err(_) => Err(ApiError::Failed(format!(
                "no answer within {:.1}s",
                limit.as_secs_f64()
            ))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            })) => Err(ApiError::NotFound(message)),
            Ok(Err(BollardError::DockerResponseServerError {
                status_code,
                message,
            })) => Err(ApiError::Failed(format!("{message} (http {status_code})"))),
            Ok(Err(e)) => Err(ApiError::Failed(e.to_string())),
        }
    }

    /// Whether the daemon answers a ping within `limit`.
    pub(crate) fn ping(&self, limit: Duration) -> bool {
        self.run(limit, self.docker.ping()).is_ok()
    }
}
