//! One container: its create body from the run options, the equivalent `docker run` line for
//! the log, its state as the status shows it, and the waits of start and stop.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth_model::config::{ContainerSpec, NetworkMode, docker_network_of, link_target};
use berth_model::run_args::{RunOptions, Typed, VolumeSpec};
use berth_model::status::ContainerNetwork;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum,
    ImageInspect,
};
use bollard::query_parameters::InspectContainerOptions;
use serde_json::json;

use super::api::{Api, ApiError, REQUEST};
use crate::DriverError;

/// The label holding a digest of the container's configuration: a stopped container whose
/// digest differs from the service file's is created again.
pub(crate) const CONFIG_LABEL: &str = "berth.config";
/// The label naming the service.
pub(crate) const SERVICE_LABEL: &str = "berth.service";
/// The label naming the resource.
pub(crate) const RID_LABEL: &str = "berth.rid";

/// How often a wait polls.
const POLL: Duration = Duration::from_millis(50);

/// `KEY` alone takes its value from berth's environment, as the docker CLI does; unset, it
/// is left out.
fn resolve_env(item: &str, out: &mut Vec<String>) {
    if item.contains('=') {
        out.push(item.to_string());
    } else if let Ok(v) = std::env::var(item) {
        out.push(format!("{item}={v}"));
    }
}

/// The lines of an env file as `docker --env-file` reads them: `KEY=VALUE` or `KEY`, `#`
/// comments and blank lines skipped, no quote processing.
pub(crate) fn env_file_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        resolve_env(l.trim_end_matches('\r'), &mut out);
    }
    out
}

/// The network mode of the create body: the service's network, a container's namespace
/// (`netns`), or `network` as given.
pub(crate) fn network_mode(svc: &str, spec: &ContainerSpec, mode: &NetworkMode) -> Option<String> {
    match mode {
        NetworkMode::Service => Some(docker_network_of(svc)),
        NetworkMode::Netns(rid) => Some(format!(
            "container:{}",
            ContainerSpec::container_name(svc, rid.id)
        )),
        _ => spec.run.network.clone(),
    }
}

/// `links` as docker takes them: `container#N[:alias]` named `<svc>.container.<N>[:alias]`.
fn links(svc: &str, spec: &ContainerSpec) -> Vec<String> {
    spec.run
        .links
        .iter()
        .map(|l| match (link_target(svc, l), l.split_once(':')) {
            (Some(t), Some((_, alias))) => {
                format!("{}:{alias}", ContainerSpec::container_name(svc, t.id))
            }
            (Some(t), None) => ContainerSpec::container_name(svc, t.id),
            (None, _) => l.clone(),
        })
        .collect()
}

/// A stable digest of what the container is created from (FNV-1a over its JSON). A container
/// on the service's network or in another's namespace (a mode the file does not spell) has
/// that mode in its digest too, so a container made before it existed is made again.
pub(crate) fn config_digest(svc: &str, spec: &ContainerSpec, mode: &NetworkMode) -> String {
    let mut json =
        serde_json::to_string(&(&spec.run_image, &spec.run_command, &spec.run)).unwrap_or_default();
    if spec.run.network.is_none()
        && let Some(mode) = network_mode(svc, spec, mode)
    {
        json.push_str(&mode);
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The create body for `spec`, run by service `svc` as resource `rid`: the run options' plain
/// fields at their place (the table's `=>` column), then those the API takes in another shape.
pub(crate) fn create_body(
    svc: &str,
    rid: &str,
    spec: &ContainerSpec,
    mode: &NetworkMode,
) -> Result<ContainerCreateBody, DriverError> {
    let o = &spec.run;
    let bug = |e: serde_json::Error| DriverError::Docker {
        what: format!("build the create body of {rid}"),
        message: e.to_string(),
    };
    let published = || o.ports.iter().flat_map(|p| &p.value);
    let mut bindings = BTreeMap::<_, Vec<_>>::new();
    for p in published() {
        let (ip, port) = (p.host_ip.as_deref(), p.host_port.map(|h| h.to_string()));
        let binding = json!({ "HostIp": ip.unwrap_or(""), "HostPort": port.unwrap_or_default() });
        bindings.entry(&p.container).or_default().push(binding);
    }
    let (anonymous, binds): (Vec<_>, Vec<_>) =
        (o.volumes.iter()).partition(|v| matches!(v.value, VolumeSpec::Anonymous(_)));
    let devices = Vec::from_iter(o.devices.iter().map(|d| {
        let (host, inner, perms) = &d.value;
        json!({ "PathOnHost": host, "PathInContainer": inner, "CgroupPermissions": perms })
    }));
    let tmpfs = BTreeMap::from_iter(o.tmpfs.iter().map(|t| t.value.clone()));
    let restart = (o.restart_policy.as_ref()).map(|r| &r.value);
    let restart = restart.map(|(name, n)| json!({ "Name": name, "MaximumRetryCount": n }));
    let entrypoint = match &o.entrypoint {
        // An empty entrypoint resets the image's, as `--entrypoint ""` does.
        Some(e) if e.is_empty() => json!([""]),
        e => json!(e),
    };
    // `--expose` and every published port.
    let exposed = set_of(o.expose.iter().chain(published().map(|p| &p.container)));
    let binds = Vec::from_iter(binds.iter().map(|v| &v.text));
    // On a user-defined network, links are the endpoint's (docker's embedded DNS answers
    // them); HostConfig.Links is the legacy default bridge's, which the daemon has none of.
    let links = links(svc, spec);
    let endpoint_network = match mode {
        NetworkMode::Service => Some(docker_network_of(svc)),
        NetworkMode::Named(n) => Some(n.clone()),
        _ => None,
    };
    // The hostname (and the rid's `container-N`) resolve too, besides the name.
    let aliases = Vec::from_iter(o.hostname.iter().cloned().chain([rid.replace('#', "-")]));
    let endpoints = endpoint_network.map(|n| json!({ n: { "Links": links, "Aliases": aliases } }));
    let host_links = endpoints.is_none().then_some(links);
    let nanos = |d: &Option<Typed<Duration>>| {
        (d.as_ref()).map(|d| i64::try_from(d.value.as_nanos()).unwrap_or(i64::MAX))
    };
    // `health_cmd` runs through the container's shell.
    let health_cmd = (o.health_cmd.as_ref()).map(|c| ["CMD-SHELL", c.as_str()]);
    let net_mode = network_mode(svc, spec, mode);
    let start_period = nanos(&o.health_start_period);
    let reshaped = [
        ("HostConfig/NetworkMode", json!(net_mode)),
        ("HostConfig/Links", json!(host_links)),
        ("NetworkingConfig/EndpointsConfig", json!(endpoints)),
        ("Healthcheck/Test", json!(health_cmd)),
        ("Healthcheck/Interval", json!(nanos(&o.health_interval))),
        ("Healthcheck/Timeout", json!(nanos(&o.health_timeout))),
        ("Healthcheck/StartPeriod", json!(start_period)),
        ("Image", json!(spec.run_image)),
        ("Cmd", json!(spec.run_command)),
        ("Entrypoint", entrypoint),
        ("Env", json!(environment(o)?)),
        ("ExposedPorts", exposed),
        ("Volumes", set_of(anonymous.iter().map(|v| &v.text))),
        ("StopTimeout", json!(stop_secs(spec))),
        ("HostConfig/Binds", json!(binds)),
        ("HostConfig/PortBindings", json!(bindings)),
        ("HostConfig/NanoCpus", json!(o.cpus.map(nano_cpus))),
        ("HostConfig/Devices", json!(devices)),
        ("HostConfig/Tmpfs", json!(tmpfs)),
        ("HostConfig/RestartPolicy", json!(restart)),
    ];
    let mut body = json!({ "AttachStdin": false, "AttachStdout": false, "AttachStderr": false });
    for (path, value) in o.api_fields().map_err(bug)?.into_iter().chain(reshaped) {
        put(&mut body, path, value);
    }
    let labels = &mut body["Labels"];
    labels[SERVICE_LABEL] = svc.into();
    labels[RID_LABEL] = rid.into();
    labels[CONFIG_LABEL] = config_digest(svc, spec, mode).into();
    serde_json::from_value(body).map_err(bug)
}

/// `{"KEY": {}, ...}`: a set as the API takes it (exposed ports, anonymous volumes).
fn set_of<'a>(keys: impl Iterator<Item = &'a String>) -> serde_json::Value {
    keys.map(|k| (k.clone(), json!({}))).collect()
}

/// Set `path` (`HostConfig/Memory`) in `body` to `value`, unless it is null or empty.
fn put(body: &mut serde_json::Value, path: &str, value: serde_json::Value) {
    if !(value.is_null() || value == json!([]) || value == json!({})) {
        *path.split('/').fold(body, |b, key| &mut b[key]) = value;
    }
}

/// The environment: the env files' lines, then `env` (a bare `KEY` from berth's own).
fn environment(o: &RunOptions) -> Result<Vec<String>, DriverError> {
    let mut env = Vec::new();
    for path in o.env_file.iter().map(|f| &f.value) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DriverError::io(format!("read env file {}", path.display()), e))?;
        env.extend(env_file_lines(&text));
    }
    o.env.iter().for_each(|item| resolve_env(item, &mut env));
    Ok(env)
}

/// The graceful stop bound in whole seconds, rounded up (at least 1).
pub(crate) fn stop_secs(spec: &ContainerSpec) -> u64 {
    let d = spec.stop_timeout;
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .max(1)
}

/// `--cpus` as the API's `NanoCpus`.
#[allow(
    clippy::cast_possible_truncation,
    reason = "the run options keep cpus within 0..=4096: at most 4.1e12 nano CPUs"
)]
fn nano_cpus(cpus: f64) -> i64 {
    (cpus * 1e9).round() as i64
}

/// [`stop_secs`] as the stop request's `t`, which is an `i32`.
pub(crate) fn stop_t(spec: &ContainerSpec) -> i32 {
    i32::try_from(stop_secs(spec)).unwrap_or(i32::MAX)
}

fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@+%".contains(&b));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// The `docker run` line that does what berth asks the API, for the log (as the seed shows it).
pub(crate) fn run_line(host: &str, name: &str, spec: &ContainerSpec) -> String {
    let o: &RunOptions = &spec.run;
    let mut w: Vec<String> = vec!["docker".into(), "-H".into(), host.into(), "run".into()];
    if o.tty {
        w.push("-t".into());
    }
    if o.interactive {
        w.push("-i".into());
    }
    w.push("-d".into());
    w.push(format!("--name={name}"));
    if o.init {
        w.push("--init".into());
    }
    w.extend(o.to_args().iter().map(|a| quote(a)));
    w.push(quote(&spec.run_image));
    if let Some(cmd) = &spec.run_command {
        w.extend(cmd.iter().map(|a| quote(a)));
    }
    w.join(" ")
}

/// Inspect a container by name or id; `None` when the daemon does not know it.
pub(crate) fn inspect(
    api: &Api,
    name: &str,
) -> Result<Option<ContainerInspectResponse>, DriverError> {
    match api.run(
        REQUEST,
        api.docker
            .inspect_container(name, None::<InspectContainerOptions>),
    ) {
        Ok(c) => Ok(Some(c)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into_driver(format!("inspect container {name}"))),
    }
}

/// Inspect an image by id or name; `None` when the daemon does not know it.
pub(crate) fn inspect_image(api: &Api, image: &str) -> Result<Option<ImageInspect>, DriverError> {
    match api.run(REQUEST, api.docker.inspect_image(image)) {
        Ok(i) => Ok(Some(i)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into_driver(format!("inspect image {image}"))),
    }
}

/// An image's friendly name: its first tag (`busybox:latest`), else its short id.
pub(crate) fn image_name(img: &ImageInspect) -> Option<String> {
    img.repo_tags
        .as_ref()
        .and_then(|t| t.iter().find(|t| t.as_str() != "<none>:<none>").cloned())
        .or_else(|| img.id.as_deref().map(short_id))
}

/// The 12-character id docker prints (`sha256:` dropped).
pub(crate) fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Whether the container runs (and is not merely restarting).
pub(crate) fn is_running(c: &ContainerInspectResponse) -> bool {
    c.state
        .as_ref()
        .is_some_and(|s| s.running == Some(true) && s.restarting != Some(true))
}

/// `exited (exit code 1)`, `created`...
pub(crate) fn describe_state(c: &ContainerInspectResponse) -> String {
    let Some(s) = &c.state else {
        return "in an unknown state".into();
    };
    let status = s
        .status
        .map(|st| st.to_string())
        .unwrap_or_else(|| "unknown".into());
    match (s.status, s.exit_code) {
        (Some(ContainerStateStatusEnum::EXITED), Some(code)) => {
            format!("{status} (exit code {code})")
        }
        _ => status,
    }
}

/// The network and published ports of a running container: `network berth-web 10.199.7.2, ports
/// 10.88.0.10:8080->80/tcp` in the status.
pub(crate) fn network_of(c: &ContainerInspectResponse) -> ContainerNetwork {
    let mode = c
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    let mut nets: Vec<(String, Option<String>)> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| {
            n.iter()
                .map(|(name, e)| {
                    let ip = e.ip_address.clone().filter(|a| !a.is_empty());
                    (name.clone(), ip)
                })
                .collect()
        })
        .unwrap_or_default();
    nets.sort();
    let no_address = nets.iter().all(|(_, ip)| ip.is_none());
    let (name, addresses) = if mode.starts_with("container:") {
        (mode, Vec::new())
    } else if no_address && matches!(mode.as_str(), "" | "default" | "bridge" | "none") {
        // docker's default under the daemon's --bridge=none: no network at all.
        ("none".to_string(), Vec::new())
    } else {
        let names: Vec<String> = nets.iter().map(|(n, _)| n.clone()).collect();
        (
            names.join(","),
            nets.into_iter().filter_map(|(_, ip)| ip).collect(),
        )
    };
    let mut ports: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .map(|p| {
            p.iter()
                .flat_map(|(inner, b)| {
                    b.iter().flatten().map(move |b| {
                        let ip = (b.host_ip.as_deref())
                            .filter(|i| !i.is_empty())
                            .unwrap_or("0.0.0.0");
                        format!("{ip}:{}->{inner}", b.host_port.as_deref().unwrap_or(""))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ports.sort();
    ports.dedup();
    ContainerNetwork {
        name,
        addresses,
        ports,
    }
}

/// The container's health, when its image has a healthcheck.
pub(crate) fn health(c: &ContainerInspectResponse) -> Option<HealthStatusEnum> {
    c.state
        .as_ref()?
        .health
        .as_ref()?
        .status
        .filter(|h| !matches!(h, HealthStatusEnum::EMPTY | HealthStatusEnum::NONE))
}

/// Wait until the container runs, failing when it exits first or the bound passes.
pub(crate) fn wait_running(api: &Api, name: &str, limit: Duration) -> Result<(), DriverError> {
    let started = Instant::now();
    loop {
        let c = inspect(api, name)?.ok_or_else(|| DriverError::Docker {
            what: format!("start container {name}"),
            message: "it was removed while starting".into(),
        })?;
        if is_running(&c) {
            return Ok(());
        }
        let exited = c.state.as_ref().is_some_and(|s| {
            matches!(
                s.status,
                Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
            )
        });
        if exited {
            let err = c
                .state
                .as_ref()
                .and_then(|s| s.error.clone())
                .filter(|e| !e.is_empty())
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            return Err(DriverError::Docker {
                what: format!("start container {name}"),
                message: format!("it is {} right after its start{err}", describe_state(&c)),
            });
        }
        if started.elapsed() > limit {
            return Err(DriverError::Timeout {
                what: format!("container {name} to run"),
                secs: limit.as_secs_f64(),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Wait until the container's healthcheck says healthy (it has one).
pub(crate) fn wait_healthy(
    api: &Api,
    name: &str,
    limit: Duration,
    started: Instant,
) -> Result<(), DriverError> {
    loop {
        let c = inspect(api, name)?;
        match c.as_ref().and_then(health) {
            Some(HealthStatusEnum::HEALTHY) | None => return Ok(()),
            Some(HealthStatusEnum::UNHEALTHY) => {
                return Err(DriverError::Docker {
                    what: format!("start container {name}"),
                    message: "its healthcheck reports it unhealthy".into(),
                });
            }
            Some(_) => {}
        }
        if c.as_ref().is_some_and(|c| !is_running(c)) {
            return Err(DriverError::Docker {
                what: format!("start container {name}"),
                message: "it stopped before its healthcheck passed".into(),
            });
        }
        if started.elapsed() > limit {
            return Err(DriverError::Timeout {
                what: format!("container {name} to be healthy"),
                secs: limit.as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until the container no longer runs; false on timeout.
pub(crate) fn wait_stopped(api: &Api, name: &str, limit: Duration) -> Result<bool, DriverError> {
    let started = Instant::now();
    loop {
        match inspect(api, name)? {
            None => return Ok(true),
            Some(c) if !is_running(&c) => return Ok(true),
            Some(_) => {}
        }
        if started.elapsed() > limit {
            return Ok(false);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::test_spec as spec;
    use bollard::models::{PortBinding, RestartPolicyNameEnum};

    /// The network mode of a container alone in its service.
    fn alone(s: &ContainerSpec) -> NetworkMode {
        NetworkMode::resolve(s, false)
    }

    #[test]
    fn huge_stop_timeouts_do_not_wrap() {
        // A negative `t` makes docker wait for the container without limit.
        let s = spec("run_image = \"busybox\"\nstop_timeout = 3000000000\n");
        assert_eq!(stop_secs(&s), 3_000_000_000);
        assert_eq!(stop_t(&s), i32::MAX);
        assert_eq!(
            create_body("web", "container#1", &s, &alone(&s))
                .unwrap()
                .stop_timeout,
            Some(3_000_000_000)
        );
        let s = spec("run_image = \"busybox\"\nstop_timeout = 9223372036854775807\n");
        assert_eq!(stop_t(&s), i32::MAX);
        assert_eq!(
            create_body("web", "container#1", &s, &alone(&s))
                .unwrap()
                .stop_timeout,
            Some(i64::MAX)
        );
        assert_eq!(stop_t(&spec("run_image = \"busybox\"\n")), 10);
    }

    #[test]
    fn the_seed_run_line() {
        let s = spec(
            "run_image = \"f66342b343ae\"\nrun_command = \"/bin/sh\"\n\
             run_args = \"-v /opt/docker.opensvc.com/vol1:/vol1:rw\"\n",
        );
        assert_eq!(
            run_line(
                "unix:///opt/opensvc/var/docker.opensvc.com/docker.sock",
                "docker.opensvc.com.container.1",
                &s
            ),
            "docker -H unix:///opt/opensvc/var/docker.opensvc.com/docker.sock run -t -i -d \
             --name=docker.opensvc.com.container.1 --init \
             -v /opt/docker.opensvc.com/vol1:/vol1:rw f66342b343ae /bin/sh"
        );
    }

    #[test]
    fn run_line_quotes_what_a_shell_would_split() {
        let s = spec(
            "run_image = \"busybox\"\nrun_command = [\"sh\", \"-c\", \"echo it's up\"]\n\
             env = [\"A=two words\"]\ntty = false\ninteractive = false\ninit = false\n",
        );
        assert_eq!(
            run_line("unix:///s", "web.container.1", &s),
            "docker -H unix:///s run -d --name=web.container.1 -e 'A=two words' busybox sh -c \
             'echo it'\\''s up'"
        );
    }

    #[test]
    fn body_maps_the_options() {
        let s = spec(
            "run_image = \"busybox\"\nrun_command = \"/bin/sh\"\n\
             run_args = \"-v /srv/vol1:/vol1:rw -v /anon -p 127.0.0.1:8080:80 -m 64m --cpus 0.5 \
             --net front -w /srv -u 1000 --entrypoint /bin/env --privileged --cap-add NET_ADMIN \
             -h web1 -l tier=front --restart on-failure:2 --device /dev/fuse --tmpfs /run:size=1m \
             --log-opt max-size=1m --expose 81\"\nenv = [\"A=1\"]\n",
        );
        let b = create_body("web", "container#1", &s, &alone(&s)).unwrap();
        assert_eq!(b.image.as_deref(), Some("busybox"));
        assert_eq!(b.cmd, Some(vec!["/bin/sh".to_string()]));
        assert_eq!(b.entrypoint, Some(vec!["/bin/env".to_string()]));
        assert_eq!(b.env, Some(vec!["A=1".to_string()]));
        assert_eq!((b.tty, b.open_stdin), (Some(true), Some(true)));
        assert_eq!(b.volumes, Some(vec!["/anon".to_string()]));
        assert_eq!(b.hostname.as_deref(), Some("web1"));
        assert_eq!(b.stop_timeout, Some(10));
        let labels = b.labels.as_ref().unwrap();
        assert_eq!(labels["tier"], "front");
        assert_eq!(labels[SERVICE_LABEL], "web");
        assert_eq!(labels[RID_LABEL], "container#1");
        assert_eq!(labels[CONFIG_LABEL], config_digest("web", &s, &alone(&s)));
        let mut exposed = b.exposed_ports.clone().unwrap();
        exposed.sort();
        assert_eq!(exposed, ["80/tcp", "81/tcp"]);
        let h = b.host_config.unwrap();
        assert_eq!(h.binds, Some(vec!["/srv/vol1:/vol1:rw".to_string()]));
        let pb = &h.port_bindings.unwrap()["80/tcp"];
        assert_eq!(
            pb.as_ref().unwrap()[0],
            PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("8080".into())
            }
        );
        assert_eq!(h.memory, Some(64 << 20));
        assert_eq!(h.nano_cpus, Some(500_000_000));
        assert_eq!(h.network_mode.as_deref(), Some("front"));
        assert_eq!((h.privileged, h.init), (Some(true), Some(true)));
        assert_eq!(h.cap_add, Some(vec!["NET_ADMIN".to_string()]));
        let rp = h.restart_policy.unwrap();
        assert_eq!(rp.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(rp.maximum_retry_count, Some(2));
        let dev = &h.devices.unwrap()[0];
        assert_eq!(dev.path_in_container.as_deref(), Some("/dev/fuse"));
        assert_eq!(dev.cgroup_permissions.as_deref(), Some("rwm"));
        assert_eq!(h.tmpfs.unwrap()["/run"], "size=1m");
        assert_eq!(h.log_config.unwrap().config.unwrap()["max-size"], "1m");
    }

    #[test]
    fn env_files_and_bare_keys() {
        // SAFETY: this test alone touches this variable.
        unsafe { std::env::set_var("BERTH_TEST_FROM_ENV", "yes") };
        let lines = env_file_lines(
            "# comment\n\nA=1\n  B=two words\nBERTH_TEST_FROM_ENV\nBERTH_TEST_UNSET_VAR\n",
        );
        assert_eq!(lines, ["A=1", "B=two words", "BERTH_TEST_FROM_ENV=yes"]);
    }

    #[test]
    fn empty_entrypoint_resets() {
        let s = spec("run_image = \"busybox\"\nentrypoint = []\n");
        let b = create_body("web", "container#1", &s, &alone(&s)).unwrap();
        assert_eq!(b.entrypoint, Some(vec![String::new()]));
    }

    #[test]
    fn digest_follows_the_config() {
        let a = spec("run_image = \"busybox\"\n");
        let b = spec("run_image = \"busybox\"\nenv = [\"A=1\"]\n");
        assert_eq!(
            config_digest("web", &a, &alone(&a)),
            config_digest("web", &a.clone(), &alone(&a))
        );
        assert_ne!(
            config_digest("web", &a, &alone(&a)),
            config_digest("web", &b, &alone(&b))
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("sha256:20f6aabc5ce1ed1a2d2e5a8c"), "20f6aabc5ce1");
        assert_eq!(short_id("20f6aabc5ce1ed1a"), "20f6aabc5ce1");
    }
    /// Every `run_args` flag at once (the env file is replaced by a real one for the body).
    const FULL: &str = "run_image = \"busybox\"\nrun_command = [\"sh\", \"-c\", \"sleep 1\"]\n\
        run_args = \"-ti -e A=1 --env-file /tmp/arch_e.env -v /x -v data:/data:ro \
        -p 1.2.3.4:80:80/udp -p 8000-8001:80-81 --expose 81-82/udp -m 1.5g --memory-swap -1 \
        --shm-size 64m --cpus 2.5 -c 512 --cpuset-cpus 0-1 --net front -w /w -u u \
        --entrypoint '' --volumes-from v --link container#2:l --read-only --privileged --cap-add NET_ADMIN \
        --cap-drop ALL --security-opt no-new-privileges --device /dev/fuse \
        --device /dev/sda:/dev/xvda:rw --tmpfs /run:size=1m --tmpfs /t --dns 9.9.9.9 \
        --add-host db=10.0.0.1 --sysctl net.core.somaxconn=1024 --group-add audio --pid host \
        --ipc private --init=false -h h --label k=v -l e --restart on-failure:3 \
        --stop-signal SIGINT --log-driver json-file --log-opt max-size=1m\"\n[container.2]\nrun_image = \"busybox\"\n";

    #[test]
    fn the_settings_table_keeps_the_body_and_the_digest() {
        // Both pinned (FULL again when links and network modes were resolved for the service's
        // network; a container alone in its service keeps its digest): a changed digest would
        // create every stopped container again, a changed body would run it differently.
        let mut s = spec(FULL);
        assert_eq!(config_digest("web", &s, &alone(&s)), "25021b10972f6fa4");
        let plain = spec("run_image = \"busybox\"\n");
        assert_eq!(
            config_digest("web", &plain, &alone(&plain)),
            "64802bc0e82179b8"
        );
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("e.env");
        std::fs::write(&env_file, "X=1\n").unwrap();
        s.run.env_file = vec![berth_model::run_args::Typed {
            text: s.run.env_file[0].text.clone(),
            value: env_file,
        }];
        let body = create_body("web", "container#1", &s, &alone(&s)).unwrap();
        let mut body = serde_json::to_value(&body).unwrap();
        body["Labels"].as_object_mut().unwrap().remove(CONFIG_LABEL);
        let want: serde_json::Value =
            serde_json::from_str(include_str!("testdata/full_body.json")).unwrap();
        assert_eq!(body, want);
    }
}
