//! Private registries: what a service's dockerd trusts (`insecure-registries` in the daemon.json
//! berth writes for it, the CA of a TLS registry in `/etc/docker/certs.d`), the credentials of
//! its pulls and of `svc SVC docker ...` (`registry_creds`), and the pull of a start
//! (`image_pull_policy`, `pull_timeout`).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine as _;
use berth_model::config::{ContainerSpec, Registry, image_registry};
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tracing::{info, warn};

use super::api::{Api, REQUEST};
use crate::{Ctx, DriverError};

/// Where dockerd reads the CA of a TLS registry: `<dir>/<host:port>/ca.crt`, for every dockerd
/// of the node.
pub const CERTS_DIR: &str = "/etc/docker/certs.d";

/// The daemon.json key berth owns.
const INSECURE: &str = "insecure-registries";

/// The registries the service's dockerd trusts: node.toml's `[docker]` ones, then the
/// service's, each once, with the CA of the `https://` ones (the service's `registry_ca`, else
/// the node's).
pub(crate) fn trusted(ctx: &Ctx<'_>) -> Result<(Vec<Registry>, Option<PathBuf>), DriverError> {
    let node = berth_engine::load::node_config(ctx.paths)
        .map_err(|e| DriverError::Refused(e.to_string()))?;
    let docker = node.docker.unwrap_or_default();
    let mut out: Vec<Registry> = Vec::new();
    for text in &docker.docker_registries {
        // node.toml's parse checked them already.
        let r = Registry::parse(text).map_err(|why| {
            DriverError::Refused(format!("node.toml [docker] docker_registries: {why}"))
        })?;
        if !out.contains(&r) {
            out.push(r);
        }
    }
    for r in &ctx.svc.settings.docker_registries {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    let ca = ctx.svc.settings.registry_ca.clone().or(docker.registry_ca);
    Ok((out, ca))
}

/// `existing` (a daemon.json, maybe empty) with `insecure-registries` set to `plain` (removed
/// when there is none); every other key kept as written.
pub(crate) fn daemon_json(existing: &str, plain: &[String]) -> Result<String, String> {
    let mut obj: Map<String, Value> = if existing.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str(existing) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("is not a JSON object".into()),
            Err(e) => return Err(format!("is not valid JSON: {e}")),
        }
    };
    if plain.is_empty() {
        obj.remove(INSECURE);
    } else {
        obj.insert(INSECURE.into(), Value::from(plain.to_vec()));
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(obj)).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// Before the service's dockerd starts: its daemon.json (`config_file`) lists the plain
/// registries, and the CA of each TLS one is where dockerd reads it.
pub(crate) fn prepare(ctx: &Ctx<'_>, config_file: &Path) -> Result<(), DriverError> {
    let (registries, ca) = trusted(ctx)?;
    let plain: Vec<String> = registries
        .iter()
        .filter(|r| !r.tls)
        .map(|r| r.host.clone())
        .collect();
    let meta = match std::fs::symlink_metadata(config_file) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(DriverError::io(
                format!("stat {}", config_file.display()),
                e,
            ));
        }
    };
    let existing = match &meta {
        // An operator's FIFO or device is theirs: never opened here.
        Some(m) if !m.is_file() => {
            warn!(
                "{} is not a regular file: docker_registries are not written to it",
                config_file.display()
            );
            None
        }
        Some(_) => Some(
            std::fs::read_to_string(config_file)
                .map_err(|e| DriverError::io(format!("read {}", config_file.display()), e))?,
        ),
        None => Some(String::new()),
    };
    if let Some(existing) = existing {
        let text = daemon_json(&existing, &plain).map_err(|why| {
            DriverError::Refused(format!(
                "docker daemon config {} {why}",
                config_file.display()
            ))
        })?;
        // A missing file is written only when there is something to say: the spawn writes `{}`.
        if text != existing && (meta.is_some() || !plain.is_empty()) {
            if let Some(dir) = config_file.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DriverError::io(format!("mkdir {}", dir.display()), e))?;
            }
            write_atomic(config_file, text.as_bytes(), 0o644)?;
        }
    }
    if let Some(ca) = &ca {
        for r in registries.iter().filter(|r| r.tls) {
            install_ca(Path::new(CERTS_DIR), &r.host, ca)?;
        }
    }
    Ok(())
}

/// Put `ca` at `<certs>/<host>/ca.crt`. The file is shared by every dockerd of the node: one
/// holding another CA is never replaced, the start is refused naming both.
pub(crate) fn install_ca(certs: &Path, host: &str, ca: &Path) -> Result<(), DriverError> {
    let pem = std::fs::read(ca)
        .map_err(|e| DriverError::io(format!("read registry_ca {}", ca.display()), e))?;
    let dir = certs.join(host);
    let dest = dir.join("ca.crt");
    match std::fs::read(&dest) {
        Ok(have) if have == pem => return Ok(()),
        Ok(_) => {
            return Err(DriverError::Refused(format!(
                "{} holds another CA than registry_ca {} for registry {host}: it is shared by \
                 every docker daemon of the node, so berth does not replace it (remove it if it \
                 is stale)",
                dest.display(),
                ca.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DriverError::io(format!("read {}", dest.display()), e)),
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| DriverError::io(format!("mkdir {}", dir.display()), e))?;
    info!("install the CA of registry {host}: {}", dest.display());
    write_atomic(&dest, &pem, 0o644)
}

/// Write `path` through a temp file in its directory and a rename.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), DriverError> {
    use std::io::Write;
    let tmp = path.with_extension(format!("berth-tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| DriverError::io(format!("open {}", tmp.display()), e))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| DriverError::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| DriverError::io(format!("rename {} to {}", tmp.display(), path.display()), e))
}

/// The `registry_creds` of a container: its own, else the service's.
pub(crate) fn creds_file<'a>(ctx: &'a Ctx<'_>, spec: &'a ContainerSpec) -> Option<&'a Path> {
    spec.registry_creds
        .as_deref()
        .or(ctx.svc.settings.registry_creds.as_deref())
}

/// Read a `registry_creds` file, refused when group or others may read it.
fn read_creds(path: &Path) -> Result<Value, DriverError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| DriverError::io(format!("registry_creds {}", path.display()), e))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        return Err(DriverError::Refused(format!(
            "registry_creds {} is readable by {} (mode {mode:04o}): chmod 600 it",
            path.display(),
            if mode & 0o004 != 0 {
                "everyone"
            } else {
                "its group"
            }
        )));
    }
    let text = std::fs::read(path)
        .map_err(|e| DriverError::io(format!("read registry_creds {}", path.display()), e))?;
    serde_json::from_slice(&text).map_err(|e| {
        DriverError::Refused(format!(
            "registry_creds {} is not a docker config.json: {e}",
            path.display()
        ))
    })
}

/// `https://h:5000/v1/` -> `h:5000`: how config.json's `auths` keys name a registry.
fn auth_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The credentials config.json `creds` holds for `registry`, as the API takes them.
pub(crate) fn credentials(
    creds: &Value,
    registry: &str,
    file: &Path,
) -> Result<Option<DockerCredentials>, DriverError> {
    let Some(auths) = creds.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let Some(entry) = auths
        .iter()
        .find(|(k, _)| auth_key(k) == registry)
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let text = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
    let (mut username, mut password) = (text("username"), text("password"));
    if let Some(auth) = text("auth").filter(|a| !a.is_empty()) {
        let bad = |why: String| {
            DriverError::Refused(format!(
                "registry_creds {}: the auth of {registry} {why}",
                file.display()
            ))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(format!("is not base64: {e}")))?;
        let pair = String::from_utf8(raw).map_err(|_| bad("is not UTF-8".into()))?;
        let (u, p) = pair
            .split_once(':')
            .ok_or_else(|| bad("is not user:password".into()))?;
        username = Some(u.to_string());
        password = Some(p.to_string());
    }
    Ok(Some(DockerCredentials {
        username,
        password,
        identitytoken: text("identitytoken"),
        serveraddress: Some(registry.to_string()),
        ..DockerCredentials::default()
    }))
}

/// The private `--config` directory of `svc SVC docker ...`: `<var>/<svc>/docker-config`
/// holding a copy of `registry_creds` as `config.json` (both readable by root only). `None`
/// when the service names no `registry_creds`.
pub(crate) fn cli_config_dir(ctx: &Ctx<'_>) -> Result<Option<PathBuf>, DriverError> {
    let file = ctx.svc.settings.registry_creds.as_deref().or_else(|| {
        ctx.svc.resources.iter().find_map(|r| match &r.spec {
            berth_model::config::Spec::Container(c) => c.registry_creds.as_deref(),
            _ => None,
        })
    });
    let Some(file) = file else {
        return Ok(None);
    };
    let creds = read_creds(file)?;
    let dir = ctx.paths.service_var(&ctx.svc.name).join("docker-config");
    std::fs::create_dir_all(&dir)
        .map_err(|e| DriverError::io(format!("mkdir {}", dir.display()), e))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| DriverError::io(format!("chmod 700 {}", dir.display()), e))?;
    let text = serde_json::to_vec_pretty(&creds).map_err(|e| DriverError::Docker {
        what: format!("write {}", dir.display()),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join("config.json"), &text, 0o600)?;
    Ok(Some(dir))
}

/// `repo:tag` -> (`repo`, `tag`); a digest reference or no tag: (`image`, `latest` or none).
fn split_tag(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last = image.rfind('/').map_or(0, |i| i + 1);
    match image[last..].rfind(':') {
        Some(i) => (&image[..last + i], Some(&image[last + i + 1..])),
        None => (image, Some("latest")),
    }
}

/// What the daemon (and through it the registry) answered.
fn answer(e: &BollardError) -> String {
    match e {
        BollardError::DockerStreamError { error } => error.clone(),
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => format!("{message} (http {status_code})"),
        other => other.to_string(),
    }
}

/// Whether a start pulls `spec.run_image` first: always with `always`; with `once` when the
/// daemon lacks it and it names a registry (`host:port/app:1`): docker's hub is not reached
/// for a bare `busybox`, which is imported or pulled by hand.
pub(crate) fn wants_pull(spec: &ContainerSpec, present: bool) -> bool {
    use berth_model::config::PullPolicy;
    match spec.image_pull_policy {
        PullPolicy::Always => true,
        PullPolicy::Once => !present && image_registry(&spec.run_image).is_some(),
    }
}

/// Pull `spec.run_image` within `pull_timeout`, with the container's `registry_creds` for its
/// registry. A pull that does not finish in time is abandoned: its connection is closed, which
/// tells dockerd to stop it. Logs the time it took.
pub(crate) fn pull(ctx: &Ctx<'_>, api: &Api, spec: &ContainerSpec) -> Result<(), DriverError> {
    let image = spec.run_image.as_str();
    let registry = image_registry(image).unwrap_or("docker.io");
    let creds = match creds_file(ctx, spec) {
        Some(file) => credentials(&read_creds(file)?, registry, file)?,
        None => None,
    };
    let no_creds = creds.is_none();
    let (repo, tag) = split_tag(image);
    let mut options = CreateImageOptionsBuilder::new().from_image(repo);
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    let options = options.build();
    let limit = spec.pull_timeout;
    info!(
        "pull image {image} from {registry} (image_pull_policy {}, pull_timeout {:.0}s)",
        match spec.image_pull_policy {
            berth_model::config::PullPolicy::Once => "once",
            berth_model::config::PullPolicy::Always => "always",
        },
        limit.as_secs_f64()
    );
    let began = Instant::now();
    let docker = &api.docker;
    let pulled = api.run(limit + REQUEST, async move {
        let stream = async {
            let mut s = docker.create_image(Some(options), None, creds);
            while let Some(item) = s.next().await {
                item?;
            }
            Ok::<(), BollardError>(())
        };
        Ok(tokio::time::timeout(limit, stream).await)
    });
    let took = began.elapsed();
    let what = || format!("pull image {image} from registry {registry}");
    match pulled {
        Ok(Ok(Ok(()))) => {
            info!("pulled image {image} in {:.2}s", took.as_secs_f64());
            Ok(())
        }
        Ok(Ok(Err(e))) => {
            let mut message = answer(&e);
            if no_creds {
                message.push_str(&format!(
                    " (no registry_creds gives credentials for {registry}: a registry that asks \
                     for authentication refuses the pull)"
                ));
            }
            Err(DriverError::Docker {
                what: what(),
                message,
            })
        }
        Ok(Err(_elapsed)) => Err(DriverError::Timeout {
            what: format!("{} (pull_timeout; the pull was stopped)", what()),
            secs: limit.as_secs_f64(),
        }),
        Err(e) => Err(e.into_driver(what())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn daemon_json_owns_insecure_registries_only() {
        assert_eq!(daemon_json("", &[]).unwrap(), "{}\n");
        assert_eq!(daemon_json("{}\n", &[]).unwrap(), "{}\n");
        let t = daemon_json("{\"debug\": true}", &["10.0.0.5:5000".into()]).unwrap();
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["debug"], true);
        assert_eq!(v[INSECURE][0], "10.0.0.5:5000");
        let back = daemon_json(&t, &[]).unwrap();
        let v: Value = serde_json::from_str(&back).unwrap();
        assert_eq!(v, serde_json::json!({"debug": true}));
        assert!(
            daemon_json("[1]", &[])
                .unwrap_err()
                .contains("not a JSON object")
        );
        assert!(
            daemon_json("{", &[])
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn tags_split_after_the_registry_port() {
        assert_eq!(
            split_tag("10.0.0.5:5000/app:1"),
            ("10.0.0.5:5000/app", Some("1"))
        );
        assert_eq!(
            split_tag("10.0.0.5:5000/app"),
            ("10.0.0.5:5000/app", Some("latest"))
        );
        assert_eq!(split_tag("busybox"), ("busybox", Some("latest")));
        assert_eq!(
            split_tag("r:5000/a@sha256:ab"),
            ("r:5000/a@sha256:ab", None)
        );
    }

    #[test]
    fn credentials_from_a_docker_config() {
        let file = Path::new("/etc/berth/creds/reg.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et");
        let creds: Value = serde_json::json!({
            "auths": { "https://reg.example:5000/v1/": { "auth": auth } }
        });
        let c = credentials(&creds, "reg.example:5000", file)
            .unwrap()
            .unwrap();
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some("s3cr:et"));
        assert_eq!(c.serveraddress.as_deref(), Some("reg.example:5000"));
        assert!(credentials(&creds, "other:5000", file).unwrap().is_none());
        let bad: Value = serde_json::json!({ "auths": { "r:1": { "auth": "!!" } } });
        let e = credentials(&bad, "r:1", file).unwrap_err().to_string();
        assert!(
            e.contains("/etc/berth/creds/reg.json") && e.contains("base64"),
            "{e}"
        );
    }

    #[test]
    fn readable_creds_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(&f, "{\"auths\":{}}").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_creds(&f).unwrap_err().to_string();
        assert!(e.contains("its group") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(read_creds(&f).unwrap_err().to_string().contains("everyone"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        read_creds(&f).unwrap();
    }

    #[test]
    fn a_ca_is_installed_once_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.pem"), dir.path().join("b.pem"));
        std::fs::write(&a, "A").unwrap();
        std::fs::write(&b, "B").unwrap();
        let certs = dir.path().join("certs.d");
        install_ca(&certs, "10.0.0.5:5000", &a).unwrap();
        install_ca(&certs, "10.0.0.5:5000", &a).unwrap();
        let dest = certs.join("10.0.0.5:5000/ca.crt");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "A");
        let e = install_ca(&certs, "10.0.0.5:5000", &b)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds another CA") && e.contains("b.pem"), "{e}");
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "A");
    }

    #[test]
    fn pulls_follow_the_policy() {
        use crate::docker::test_spec as spec;
        let private = spec("run_image = \"10.0.0.5:5000/app:1\"\n");
        assert!(wants_pull(&private, false));
        assert!(!wants_pull(&private, true));
        let hub = spec("run_image = \"busybox\"\n");
        assert!(!wants_pull(&hub, false));
        let always = spec("run_image = \"busybox\"\nimage_pull_policy = \"always\"\n");
        assert!(wants_pull(&always, true));
        assert_eq!(always.pull_timeout, Duration::from_secs(120));
    }
}
