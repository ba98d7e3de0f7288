//! The docker driver: a private dockerd per service with containers, and `[container#N]`
//! resources of type docker run by it (named `<svc>.container.<N>`).
//!
//! - status: never starts the daemon. `down` + `# docker daemon is not running` while it does not
//!   run; `down` + `# can not find container id` while it runs without the container; `up`
//!   `<short id>@<image name>` when the container runs, with a warning when it runs another image
//!   than `run_image`. The label names the image by its tag once the daemon knows it.
//! - start: start the daemon when needed (refused while the fs holding `docker_data_dir` is down),
//!   create the container when absent (again when its config changed), start it, wait until it
//!   runs and, with a healthcheck, is healthy. A failure shuts down a daemon this call started
//!   when it runs no container, so a rollback can unmount its fs.
//! - stop: graceful stop within `stop_timeout`, then kill; then, when the daemon runs no
//!   container, shut it down (TERM, bounded wait, KILL) and remove its socket and pidfile.
//! - passthrough: the docker CLI against the private socket. chargeback: usage figures.
//!
//! All API work goes through bollard on the unix socket; the docker CLI is only run for the
//! passthrough.

mod api;
mod container;
mod daemon;
mod host;
mod network;
mod registry;

pub use registry::CERTS_DIR;

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_model::ResourceState;
use berth_model::Rid;
use berth_model::config::{ContainerSpec, NetworkMode, PullPolicy, Spec};
use berth_model::rid::Kind;
use berth_model::status::{Chargeback, LogEntry, Status};
use bollard::models::HealthStatusEnum;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    ListImagesOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use tracing::{info, warn};

use crate::{Ctx, DriverError, Outcome};
use api::{Api, REQUEST};
use container::{inspect, inspect_image, is_running, short_id};
use daemon::{Daemon, Probe};

pub use daemon::DEFAULT_FLAGS;

/// The container name of `rid` in `ctx`'s service.
fn name_of(ctx: &Ctx<'_>, rid: Rid) -> String {
    ContainerSpec::container_name(&ctx.svc.name, rid.id)
}

/// The status as the seed prints it. Never starts the daemon.
pub fn status(ctx: &Ctx<'_>, rid: Rid, spec: &ContainerSpec) -> ResourceState {
    let mut st = ResourceState::new(Status::Down, spec.run_image.clone(), Vec::new());
    let d = Daemon::new(ctx);
    let api = match d.probe() {
        Err(e) => {
            st.status = Status::Undef;
            st.log.push(LogEntry::error(e.to_string()));
            return st;
        }
        Ok(Probe::Down) => {
            // A killed dockerd leaves its containers running under their shims: say so.
            if let Some(o) = d.orphan_container(&rid.to_string()) {
                st.status = Status::Warn;
                st.label = format!("{}@{}", short_id(&o.id), o.image);
                let process = o
                    .process
                    .map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "a process".into());
                st.log.push(LogEntry::warn(format!(
                    "docker daemon is not running, but container {} still runs ({process} under \
                     containerd-shim pid {}): svc {} stop cleans it up",
                    short_id(&o.id),
                    o.shim,
                    ctx.svc.name
                )));
                return st;
            }
            st.log.push(LogEntry::info("docker daemon is not running"));
            return st;
        }
        Ok(Probe::Silent(pid)) => {
            st.log.push(LogEntry::warn(format!(
                "docker daemon pid {pid} does not answer on {}",
                d.socket.display()
            )));
            return st;
        }
        Ok(Probe::Running(api)) => api,
    };
    let mode = NetworkMode::of(ctx.svc, spec);
    let configured = container::network_mode(&ctx.svc.name, spec, &mode);
    if let Err(e) = container_status(&api, &name_of(ctx, rid), spec, configured, &mut st) {
        st.status = Status::Undef;
        st.log.push(LogEntry::error(e.to_string()));
    }
    st
}

fn container_status(
    api: &Api,
    name: &str,
    spec: &ContainerSpec,
    configured: Option<String>,
    st: &mut ResourceState,
) -> Result<(), DriverError> {
    let wanted = inspect_image(api, &spec.run_image)?;
    if let Some(name) = wanted.as_ref().and_then(container::image_name) {
        st.label = name;
    }
    let Some(c) = inspect(api, name)? else {
        st.log.push(LogEntry::info("can not find container id"));
        return Ok(());
    };
    let id = short_id(c.id.as_deref().unwrap_or_default());
    let image_id = c.image.clone().unwrap_or_default();
    let same_image = wanted.as_ref().and_then(|w| w.id.as_deref()) == Some(image_id.as_str());
    let image = if same_image {
        st.label.clone()
    } else {
        inspect_image(api, &image_id)?
            .as_ref()
            .and_then(container::image_name)
            .or_else(|| c.config.as_ref().and_then(|cfg| cfg.image.clone()))
            .unwrap_or_else(|| short_id(&image_id))
    };
    st.label = format!("{id}@{image}");
    if is_running(&c) {
        st.status = Status::Up;
        let mut net = container::network_of(&c);
        // docker names the namespace's container by id: the file's name reads better.
        if let Some(conf) = configured.filter(|c| c.starts_with("container:"))
            && net.name.starts_with("container:")
        {
            net.name = conf;
        }
        // A container on no network shows no line (the seed's tree stays as it was).
        if net.name != "none" || !net.ports.is_empty() {
            st.log.push(LogEntry::info(net.line()));
        }
        st.network = Some(net);
        if !same_image {
            st.log.push(LogEntry::warn(match &wanted {
                Some(_) => format!(
                    "the container runs image {image}, not run_image {}",
                    spec.run_image
                ),
                None => format!(
                    "the container runs image {image}; run_image {} is not known to the docker \
                     daemon",
                    spec.run_image
                ),
            }));
        }
        if container::health(&c) == Some(bollard::models::HealthStatusEnum::UNHEALTHY) {
            st.log.push(LogEntry::warn("the container is unhealthy"));
        }
        if c.state.as_ref().and_then(|s| s.paused) == Some(true) {
            st.status = Status::Warn;
            st.log.push(LogEntry::warn("the container is paused"));
        }
    } else {
        st.log.push(LogEntry::info(format!(
            "container {id} is {}",
            container::describe_state(&c)
        )));
    }
    Ok(())
}

/// The pid of container `rid`'s process while it runs (for a netns ip: its network namespace is
/// `/proc/<pid>/ns/net`); `None` when the daemon or the container does not run. Never starts
/// the daemon.
pub fn container_pid(ctx: &Ctx<'_>, rid: Rid) -> Result<Option<i32>, DriverError> {
    let Probe::Running(api) = Daemon::new(ctx).probe()? else {
        return Ok(None);
    };
    let Some(c) = inspect(&api, &name_of(ctx, rid))? else {
        return Ok(None);
    };
    if !is_running(&c) {
        return Ok(None);
    }
    Ok(c.state
        .and_then(|s| s.pid)
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0))
}

/// Start the container (and the daemon when needed).
pub fn start(ctx: &Ctx<'_>, rid: Rid, spec: &ContainerSpec) -> Result<Outcome, DriverError> {
    let d = Daemon::new(ctx);
    let (api, started_daemon) = d.ensure(ctx)?;
    let result = check_requires(ctx, &api, rid, spec)
        .and_then(|()| start_container(ctx, &d, &api, rid, spec))
        .map_err(|e| name_dependents(ctx, rid, e));
    if result.is_err() && started_daemon {
        // Leave the host as it was, so a rollback can unmount the data dir's fs.
        match d.shutdown_if_idle(&api) {
            Ok(_) => {}
            Err(e) => warn!("cannot shut down the docker daemon started for this action: {e}"),
        }
    }
    result
}

/// A container starts only once every container it requires (`start_requires`) runs and, with
/// a healthcheck, is healthy: the engine starts them first, this guards a `--rid` start.
fn check_requires(
    ctx: &Ctx<'_>,
    api: &Api,
    rid: Rid,
    spec: &ContainerSpec,
) -> Result<(), DriverError> {
    for req in spec
        .start_requires
        .iter()
        .filter(|r| r.kind == Kind::Container)
    {
        let name = name_of(ctx, *req);
        let why = match inspect(api, &name)? {
            None => Some("it does not exist".to_string()),
            Some(c) if !is_running(&c) => Some(format!("it is {}", container::describe_state(&c))),
            Some(c) => match container::health(&c) {
                Some(HealthStatusEnum::HEALTHY) | None => None,
                Some(h) => Some(format!("its healthcheck says {h}")),
            },
        };
        if let Some(why) = why {
            return Err(DriverError::Refused(format!(
                "{rid} requires {req} (start_requires), which is not up: {why}"
            )));
        }
    }
    Ok(())
}

/// A failed start of a container others require names them: they are not started.
fn name_dependents(ctx: &Ctx<'_>, rid: Rid, e: DriverError) -> DriverError {
    let dependents: Vec<String> = ctx
        .svc
        .resources
        .iter()
        .filter(|r| match &r.spec {
            Spec::Container(c) => c.start_requires.contains(&rid),
            _ => false,
        })
        .map(|r| r.rid.to_string())
        .collect();
    if dependents.is_empty() {
        return e;
    }
    DriverError::Refused(format!(
        "{e}; {} require{} {rid} (start_requires): not started",
        dependents.join(", "),
        if dependents.len() == 1 { "s" } else { "" }
    ))
}

fn start_container(
    ctx: &Ctx<'_>,
    d: &Daemon,
    api: &Api,
    rid: Rid,
    spec: &ContainerSpec,
) -> Result<Outcome, DriverError> {
    let name = name_of(ctx, rid);
    let began = Instant::now();
    let existing = inspect(api, &name)?;
    if let Some(c) = &existing
        && is_running(c)
    {
        info!("container {name} is already up");
        return Ok(Outcome::AlreadyDone);
    }
    let present = inspect_image(api, &spec.run_image)?;
    if registry::wants_pull(spec, present.is_some()) {
        registry::pull(ctx, api, spec)?;
    }
    let mode = NetworkMode::of(ctx.svc, spec);
    let digest = container::config_digest(&ctx.svc.name, spec, &mode);
    let net_id = if mode == NetworkMode::Service {
        Some(network::ensure(api, ctx.svc, &ctx.paths.var_dir)?)
    } else {
        None
    };
    let stale = existing.as_ref().is_some_and(|c| {
        let other_config = c
            .config
            .as_ref()
            .and_then(|cfg| cfg.labels.as_ref())
            .and_then(|l| l.get(container::CONFIG_LABEL))
            != Some(&digest);
        // The network was made again since the container was created: it refers to the old one.
        let other_network = net_id.as_ref().is_some_and(|id| {
            !c.network_settings
                .as_ref()
                .and_then(|n| n.networks.as_ref())
                .is_some_and(|n| n.values().any(|e| e.network_id.as_ref() == Some(id)))
        });
        // `always`: a pull that brought another image under the same name makes it again.
        let other_image = spec.image_pull_policy == PullPolicy::Always
            && c.image.is_some()
            && inspect_image(api, &spec.run_image)
                .ok()
                .flatten()
                .and_then(|i| i.id)
                != c.image;
        other_config || other_network || other_image
    });
    let id = match existing {
        Some(c) if !stale => {
            let id = c.id.unwrap_or_else(|| name.clone());
            info!("docker -H {} start {}", d.host(), short_id(&id));
            id
        }
        other => {
            // Everything that can be checked is, before anything is removed: a start that
            // fails on a missing image or a bad option leaves the old container as it was.
            if inspect_image(api, &spec.run_image)?.is_none() {
                return Err(DriverError::Refused(missing_image(
                    &ctx.svc.name,
                    &spec.run_image,
                )));
            }
            let body = container::create_body(&ctx.svc.name, &rid.to_string(), spec, &mode)?;
            // The old container is set aside, not removed, until the new one is created: a
            // create the daemon refuses puts it back as it was. One already aside is what a start
            // that did not finish left: the old container when there is no other.
            let aside = format!("{name}.replaced");
            let old = match other {
                Some(c) => {
                    remove_if_present(d, api, &aside)?;
                    let id = c.id.unwrap_or_else(|| name.clone());
                    info!(
                        "container {name} was created from another configuration: docker -H {} \
                         rename {} {aside}",
                        d.host(),
                        short_id(&id)
                    );
                    rename(api, &id, &aside)?;
                    Some(id)
                }
                None => inspect(api, &aside)?.map(|c| c.id.unwrap_or_else(|| aside.clone())),
            };
            info!("{}", container::run_line(&d.host(), &name, spec));
            let created = api
                .run(
                    REQUEST,
                    api.docker.create_container(
                        Some(CreateContainerOptionsBuilder::new().name(&name).build()),
                        body,
                    ),
                )
                .map_err(|e| e.into_driver(format!("create container {name}")));
            let created = match (created, old) {
                (Ok(created), None) => created,
                (Ok(created), Some(_)) => {
                    if let Err(e) = remove_if_present(d, api, &aside) {
                        warn!("{e}: container {aside} is left");
                    }
                    created
                }
                (Err(e), Some(id)) => {
                    warn!("{e}: the container of the other configuration is kept as it was");
                    rename(api, &id, &name)?;
                    return Err(e);
                }
                (Err(e), None) => return Err(e),
            };
            for w in created.warnings.iter().filter(|w| !w.is_empty()) {
                warn!("{w}");
            }
            info!("output:\n{}", created.id);
            created.id
        }
    };
    api.run(
        spec.start_timeout + REQUEST,
        api.docker.start_container(&id, None),
    )
    .map_err(|e| e.into_driver(format!("start container {name}")))?;
    info!("wait for container up status");
    let waited = container::wait_running(api, &name, spec.start_timeout).and_then(|()| {
        if inspect(api, &name)?
            .as_ref()
            .and_then(container::health)
            .is_some()
        {
            info!("wait for container operational");
            container::wait_healthy(api, &name, spec.start_timeout, began)?;
        }
        Ok(())
    });
    if let Err(e) = waited {
        // A container that runs but never became operational is not left running: what
        // depends on it is not started, and the rollback stops only what did start.
        warn!("{e}: stop container {name}");
        if let Err(stop) = stop_container(d, api, &name, spec) {
            warn!("cannot stop container {name}: {stop}");
        }
        return Err(e);
    }
    Ok(Outcome::Changed)
}

/// Rename container `id` to `to`.
fn rename(api: &Api, id: &str, to: &str) -> Result<(), DriverError> {
    let options = RenameContainerOptionsBuilder::new().name(to).build();
    api.run(REQUEST, api.docker.rename_container(id, options))
        .map_err(|e| e.into_driver(format!("rename container {} to {to}", short_id(id))))
}

/// Remove container `name` if the daemon has it (a container set aside by a start that did not
/// finish).
fn remove_if_present(d: &Daemon, api: &Api, name: &str) -> Result<(), DriverError> {
    let Some(c) = inspect(api, name)? else {
        return Ok(());
    };
    let id = c.id.unwrap_or_else(|| name.to_string());
    info!("docker -H {} rm {}", d.host(), short_id(&id));
    let force = RemoveContainerOptionsBuilder::new().force(true).build();
    api.run(REQUEST, api.docker.remove_container(&id, Some(force)))
        .map_err(|e| e.into_driver(format!("remove container {name}")))
}

/// Stop the container, then the daemon when it runs no container any more.
pub fn stop(ctx: &Ctx<'_>, rid: Rid, spec: &ContainerSpec) -> Result<Outcome, DriverError> {
    let d = Daemon::new(ctx);
    let name = name_of(ctx, rid);
    let api = match d.probe()? {
        Probe::Running(api) => api,
        Probe::Silent(pid) => {
            warn!(
                "docker daemon pid {pid} does not answer on {}: shut it down",
                d.socket.display()
            );
            let _lock = d.lock()?;
            d.terminate()?;
            return Ok(Outcome::Changed);
        }
        Probe::Down => {
            if d.leftover_shims().is_empty() {
                let _lock = d.lock()?;
                return Ok(if d.clean_stale()? {
                    Outcome::Changed
                } else {
                    info!("docker daemon is not running: container {name} is down");
                    Outcome::AlreadyDone
                });
            }
            // Containers outlived a daemon crash and keep the data dir busy: a daemon on the same
            // roots reaps them; then it is shut down like any other.
            warn!("containers outlived a docker daemon crash: start the daemon to clean them up");
            d.ensure(ctx)?.0
        }
    };
    let mut outcome = stop_container(&d, &api, &name, spec)?;
    if d.shutdown_if_idle(&api)? {
        outcome = Outcome::Changed;
    }
    Ok(outcome)
}

fn stop_container(
    d: &Daemon,
    api: &Api,
    name: &str,
    spec: &ContainerSpec,
) -> Result<Outcome, DriverError> {
    let Some(c) = inspect(api, name)? else {
        info!("container {name} does not exist");
        return Ok(Outcome::AlreadyDone);
    };
    if !is_running(&c) {
        info!("container {name} is already down");
        return Ok(Outcome::AlreadyDone);
    }
    let id = short_id(c.id.as_deref().unwrap_or(name));
    let secs = container::stop_secs(spec);
    info!("docker -H {} stop {id}", d.host());
    let stopped = api.run(
        Duration::from_secs(secs) + REQUEST,
        api.docker.stop_container(
            name,
            Some(
                StopContainerOptionsBuilder::new()
                    .t(container::stop_t(spec))
                    .build(),
            ),
        ),
    );
    match stopped {
        Ok(()) => info!("output:\n{id}"),
        Err(e) => warn!("docker stop {id} failed: {}", e.message()),
    }
    info!("wait for container down status");
    if !container::wait_stopped(api, name, Duration::from_secs(10))? {
        warn!(
            "container {id} still runs: docker -H {} kill {id}",
            d.host()
        );
        api.run(
            REQUEST,
            api.docker.kill_container(
                name,
                Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()),
            ),
        )
        .map_err(|e| e.into_driver(format!("kill container {name}")))?;
        if !container::wait_stopped(api, name, Duration::from_secs(10))? {
            return Err(DriverError::Timeout {
                what: format!("container {name} to stop"),
                secs: secs.saturating_add(20) as f64,
            });
        }
    }
    Ok(Outcome::Changed)
}

/// Run the docker CLI against the service's private daemon (`docker -H unix://<sock> ARGS...`),
/// stdin, stdout and stderr inherited, after starting the daemon when it does not run (refused
/// while the fs holding the data dir is down). Returns docker's exit code (128 + the signal
/// when killed by one). Takes no service lock.
pub fn passthrough(ctx: &Ctx<'_>, args: &[OsString]) -> Result<i32, DriverError> {
    if !ctx.svc.has_containers() {
        return Err(DriverError::Refused(format!(
            "service {} has no container resource, so no private docker daemon",
            ctx.svc.name
        )));
    }
    let d = Daemon::new(ctx);
    if needs_daemon(args) {
        d.ensure(ctx)?;
    }
    let mut cmd = Command::new("docker");
    cmd.arg("-H").arg(d.host());
    // The service's registry_creds, unless the command names its own --config.
    let own_config = args
        .iter()
        .any(|a| a == "--config" || a.to_str().is_some_and(|a| a.starts_with("--config=")));
    if !own_config && let Some(dir) = registry::cli_config_dir(ctx)? {
        cmd.arg("--config").arg(dir);
    }
    let status = cmd
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .status()
        .map_err(|e| DriverError::io("run docker (is the docker CLI installed?)", e))?;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1))
}

/// Global docker CLI options that take a value (`--log-level debug`), so their value is not
/// read as the command.
const CLI_VALUE_OPTIONS: &[&str] = &[
    "--config",
    "-c",
    "--context",
    "-H",
    "--host",
    "-l",
    "--log-level",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
];

/// docker's management commands: their first word is a sub-command, not an argument.
const CLI_MANAGEMENT: &[&str] = &[
    "builder",
    "buildx",
    "checkpoint",
    "compose",
    "config",
    "container",
    "context",
    "image",
    "manifest",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "stack",
    "swarm",
    "system",
    "trust",
    "volume",
];

/// Whether the docker CLI needs the daemon for `args`: help and version do not (`--help`, `-h`
/// or `--version` among the global options, the `help` and `version` commands, `--help` among a
/// command's options before its first argument, no command at all). Anything else may, and starts
/// it as before (`docker images` starts the daemon silently, as the seed shows).
fn needs_daemon(args: &[OsString]) -> bool {
    let words: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
    let mut i = 0;
    while let Some(w) = words.get(i) {
        match *w {
            "-h" | "--help" | "-v" | "--version" => return false,
            w if CLI_VALUE_OPTIONS.contains(&w) => i += 2,
            w if w.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let Some(command) = words.get(i) else {
        return false;
    };
    if matches!(*command, "help" | "version") {
        return false;
    }
    let mut rest = words[i + 1..].iter();
    let mut sub_seen = !CLI_MANAGEMENT.contains(command);
    for w in rest.by_ref() {
        match *w {
            "--help" => return false,
            "--" => break,
            w if w.starts_with('-') => {}
            _ if !sub_seen => sub_seen = true,
            _ => break,
        }
    }
    true
}

/// Usage figures of the service's private daemon, for services with containers: containers and
/// images it knows (from its API when it runs, else counted in the data root), of those the
/// containers running (none when the daemon is down), bytes used under the data root (`data_bytes`
/// when the caller measured it lately: sizing a tree is costly), and the resident memory of
/// dockerd and its containerd. Never starts it.
pub fn chargeback(ctx: &Ctx<'_>, data_bytes: Option<u64>) -> Option<Chargeback> {
    if !ctx.svc.has_containers() {
        return None;
    }
    let d = Daemon::new(ctx);
    let mut cb = Chargeback {
        data_bytes: data_bytes.unwrap_or_else(|| host::disk_usage(&d.data_root)),
        ..Chargeback::default()
    };
    let counted = match d.probe() {
        Ok(Probe::Running(api)) => {
            let containers = api.run(
                REQUEST,
                api.docker
                    .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build())),
            );
            let images = api.run(
                REQUEST,
                api.docker
                    .list_images(Some(ListImagesOptionsBuilder::new().all(false).build())),
            );
            match (containers, images) {
                (Ok(c), Ok(i)) => {
                    cb.containers = c.len() as u64;
                    cb.running = c
                        .iter()
                        .filter(|c| {
                            c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                        })
                        .count() as u64;
                    cb.images = i.len() as u64;
                    true
                }
                _ => false,
            }
        }
        _ => false,
    };
    if !counted {
        cb.containers = host::count_entries(&d.data_root.join("containers"));
        cb.images = std::fs::read_dir(d.data_root.join("image"))
            .map(|drivers| {
                drivers
                    .flatten()
                    .map(|drv| host::count_entries(&drv.path().join("imagedb/content/sha256")))
                    .sum()
            })
            .unwrap_or(0);
    }
    if let Some(pid) = d.pid() {
        cb.daemon_rss_bytes = host::rss(pid)
            + host::children(pid)
                .iter()
                .filter(|p| p.comm == "containerd")
                .map(|p| host::rss(p.pid))
                .sum::<u64>();
    }
    Some(cb)
}

/// Why a start cannot create a container from `image`, and the two ways to get it: a pull (needs
/// a registry), or, offline, an import through the passthrough, which needs the docker data dir's
/// fs up (the failed start's rollback took it down).
fn missing_image(svc: &str, image: &str) -> String {
    format!(
        "image {image} is not known to the docker daemon of {svc}: pull it \
         (svc {svc} docker pull {image}, from a registry this node reaches) or, offline, import \
         it with the fs up (svc {svc} startfs, then \
         tar -C ROOTFS -c . | svc {svc} docker import - {image}), then start again"
    )
}

/// The spec of `[container.1]` holding `body`, parsed as a service file: the container tests'
/// way of writing a spec.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
fn test_spec(body: &str) -> ContainerSpec {
    let svc = berth_model::ServiceConfig::parse(
        std::path::Path::new("/etc/berth/services/web.toml"),
        &format!("[container.1]\n{body}"),
    )
    .unwrap();
    match &svc.resources[0].spec {
        Spec::Container(c) => (**c).clone(),
        _ => panic!("not a container"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(line: &str) -> bool {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        needs_daemon(&args)
    }

    #[test]
    fn help_and_version_need_no_daemon() {
        for line in [
            "",
            "--help",
            "-h",
            "--version",
            "-v",
            "help",
            "help ps",
            "version",
            "--log-level debug version",
            "ps --help",
            "run --help",
            "image --help",
            "image ls --help",
            "container run -it --help",
        ] {
            assert!(!needs(line), "{line:?} needs no daemon");
        }
        for line in [
            "images",
            "ps -a",
            "pull busybox",
            "--log-level debug ps",
            "run -h myhost busybox",
            "run busybox sh --help",
            "exec web.container.1 ls --help",
            "image ls",
            "container inspect x",
        ] {
            assert!(needs(line), "{line:?} needs the daemon");
        }
    }
}
