//! The vg driver: an LVM volume group owned through a host tag (`@<nodename>`), activated with
//! `vgchange`.
//!
//! Everything goes through the LVM commands with `LVM_SUPPRESS_FD_WARNINGS=1`; reports are read
//! with `--reportformat json`, and success is the exit code, never the text. Status, start and
//! stop and the precheck read the VG and its LVs with one `lvm fullreport VG` (where `vgs` then
//! `lvs` took two commands); a start reuses its precheck's report while nothing changed on the
//! host since (the engine's [`Ctx::take_prechecked`]), so it runs no more LVM commands than an
//! operator's `vgs`, `vgchange --addtag`, `vgchange -a y`. Inside a status walk
//! ([`crate::reads`]), one `lvm fullreport` of the walk's VGs ([`LvmSnapshot`]) answers every
//! vg status. `/etc/lvm/backup` is never read: it is stale once another node retagged the VG.
//!
//! - `start`: refuse a VG tagged by another node (unless `--force`, which removes those tags),
//!   `vgchange --addtag @<node>`, `vgchange -a y`. If activation fails, a tag this start added is
//!   removed again, so a failed start leaves the VG as it found it.
//! - `stop`: `vgchange -a n` (retried, an LV may still be busy for a moment), then
//!   `vgchange --deltag @<node>`.
//! - `status`: up when tagged with this node and every LV active (no LV counts as active), warn
//!   when tagged here with some LV inactive, down otherwise.
//!
//! Speed: every LVM command runs with `LVM_SYSTEM_DIR=<run>/lvm` ([`system_dir`]), a copy of the
//! host's configuration dir whose `lvm.conf` ends with `global { use_aio = 0 }`. LVM's AIO
//! context costs 30-40 ms of kernel `io_destroy` at every command's exit, and `--config
//! global/use_aio=0` on the command line is applied too late to avoid it. The answers are the
//! same: every other entry (`lvmlocal.conf`, `profile/`, `backup/`, `archive/`, `devices/`...) is
//! a symlink to the host's, so metadata backups still land in `/etc/lvm/backup`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_model::config::VgSpec;
use berth_model::status::{LogEntry, Status};
use berth_model::{ResourceState, Rid};
use serde::Deserialize;
use tracing::{info, warn};

use crate::{Ctx, DriverError, Outcome};

/// How many times `vgchange -a n` is tried.
const DEACTIVATE_TRIES: u32 = 5;
/// The pause between two tries.
const DEACTIVATE_PAUSE: Duration = Duration::from_millis(500);
/// The bound on one LVM command: LVM waits for its locks without limit, and a command stuck on
/// a dead device never returns.
const LVM_TIMEOUT: Duration = Duration::from_secs(60);

/// Label: the VG name, as the seed prints it.
pub fn label(spec: &VgSpec) -> String {
    spec.vgname.clone()
}

/// The physical volumes of the VG (`pvs`), for `svc SVC print devs`; none when it does not
/// exist.
pub fn pvs(ctx: &Ctx<'_>, spec: &VgSpec) -> Result<Vec<PathBuf>, DriverError> {
    check_name(&spec.vgname)?;
    let select = format!("vg_name=\"{}\"", spec.vgname);
    let out = lvm(
        &Lvm::for_ctx(ctx),
        &["pvs", "--noheadings", "--select", &select, "-o", "pv_name"],
        false,
    )?;
    Ok(out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// What one LVM command printed.
#[derive(Debug)]
struct Output {
    stdout: String,
}

/// The text of a failed command: its stderr lines, trimmed, repeats dropped, `; `-joined
/// (without device-mapper, LVM prints the same four lines once per LV).
fn summarize(stderr: &str, stdout: &str) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for line in stderr.lines().chain(stdout.lines()) {
        let l = line.trim();
        if !l.is_empty() && !seen.contains(&l) && !l.starts_with('{') && !l.starts_with('}') {
            seen.push(l);
        }
    }
    seen.join("; ")
}

/// How LVM commands are run: with berth's system dir when it could be made.
#[derive(Debug, Clone, Default)]
struct Lvm {
    system_dir: Option<PathBuf>,
}

impl Lvm {
    fn for_ctx(ctx: &Ctx<'_>) -> Lvm {
        Lvm {
            system_dir: lvm_system_dir(&ctx.paths.run_dir),
        }
    }
}

/// The `LVM_SYSTEM_DIR` berth runs LVM with, made under `run_dir` from the host's configuration
/// (see [`system_dir`]); `None` when it cannot be made.
pub fn lvm_system_dir(run_dir: &Path) -> Option<PathBuf> {
    system_dir(&host_system_dir(), run_dir)
}

/// The host's LVM configuration dir: `LVM_SYSTEM_DIR` when berth runs with it set, else
/// `/etc/lvm`.
fn host_system_dir() -> PathBuf {
    std::env::var_os("LVM_SYSTEM_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/lvm"))
}

/// What ends berth's `lvm.conf`: the later setting wins in LVM's config.
const NO_AIO: &str = "\n# Added by berth: no AIO context (its teardown costs 30-40 ms per command).\n\
                      global {\n\tuse_aio = 0\n}\n";

/// The first line of berth's `lvm.conf`: what it was made from, to notice a change.
fn stamp(host: &Path) -> Option<String> {
    let conf = std::fs::metadata(host.join("lvm.conf")).ok()?;
    let dir = std::fs::metadata(host).ok()?;
    let ns = |m: &std::fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
    };
    Some(format!(
        "# berth: from {}/lvm.conf mtime {} size {}, dir mtime {}\n",
        host.display(),
        ns(&conf)?,
        conf.len(),
        ns(&dir)?
    ))
}

/// `<run>/lvm`, made (or remade, when the host's `lvm.conf` or its dir changed) from `host`:
/// `lvm.conf` is the host's followed by `global { use_aio = 0 }`, every other entry a symlink
/// to the host's. `None` when it cannot be made (no host `lvm.conf`, a read-only run dir): LVM
/// then runs with the host's configuration, slower, with the same answers.
fn system_dir(host: &Path, run_dir: &Path) -> Option<PathBuf> {
    let stamp = stamp(host)?;
    let dir = run_dir.join("lvm");
    let conf = dir.join("lvm.conf");
    if std::fs::read_to_string(&conf).is_ok_and(|t| t.starts_with(&stamp)) {
        return Some(dir);
    }
    match make_system_dir(host, &dir, &stamp) {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::debug!(
                "cannot make {}: {e}; LVM runs with {}",
                dir.display(),
                host.display()
            );
            None
        }
    }
}

/// Writes `dir` (see [`system_dir`]). Each entry is made under a temporary name and renamed
/// into place, so an LVM command started meanwhile (another svc) sees the old or the new one.
fn make_system_dir(host: &Path, dir: &Path, stamp: &str) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = |name: &str| dir.join(format!(".{name}.{}.tmp", std::process::id()));
    for entry in std::fs::read_dir(host)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == "lvm.conf" {
            continue;
        }
        let target = host.join(name);
        let link = dir.join(name);
        if std::fs::read_link(&link).is_ok_and(|t| t == target) {
            continue;
        }
        let t = tmp(name);
        let _ = std::fs::remove_file(&t);
        std::os::unix::fs::symlink(&target, &t)?;
        std::fs::rename(&t, &link)?;
    }
    let text = std::fs::read_to_string(host.join("lvm.conf"))?;
    let t = tmp("lvm.conf");
    std::fs::write(&t, format!("{stamp}{text}{NO_AIO}"))?;
    std::fs::rename(&t, dir.join("lvm.conf"))
}

thread_local! {
    /// The LVM commands run on this thread ([`commands_run_on_this_thread`]).
    static COMMANDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many LVM commands this thread has run: what an action costs in LVM processes (an
/// action runs its resources on the calling thread).
pub fn commands_run_on_this_thread() -> u64 {
    COMMANDS.with(std::cell::Cell::get)
}

/// Run an LVM command within [`LVM_TIMEOUT`]; a non-zero exit code is an error naming the
/// command line.
fn lvm(env: &Lvm, args: &[&str], log: bool) -> Result<Output, DriverError> {
    lvm_within(env, args, log, LVM_TIMEOUT)
}

/// [`lvm`] with its bound: past it, the command is killed and the error names it.
fn lvm_within(env: &Lvm, args: &[&str], log: bool, bound: Duration) -> Result<Output, DriverError> {
    let cmdline = args.join(" ");
    if log {
        info!("{cmdline}");
    }
    let out = lvm_run(env, args, &cmdline, bound)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(DriverError::Command {
            command: cmdline,
            code: out.status.code().unwrap_or(-1),
            output: summarize(&stderr, &stdout),
        });
    }
    if log && !stdout.trim().is_empty() {
        info!("output:\n{}", stdout.trim_end());
    }
    Ok(Output { stdout })
}

/// Run an LVM command within `bound`, whatever its exit code.
fn lvm_run(
    env: &Lvm,
    args: &[&str],
    cmdline: &str,
    bound: Duration,
) -> Result<crate::cmd::Output, DriverError> {
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| DriverError::Refused("empty lvm command".to_string()))?;
    COMMANDS.with(|c| c.set(c.get() + 1));
    let mut command = Command::new(prog);
    command
        .args(rest)
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .env("LC_ALL", "C");
    if let Some(dir) = &env.system_dir {
        command.env("LVM_SYSTEM_DIR", dir);
    }
    crate::cmd::run(&mut command, cmdline, bound).map_err(|e| match e {
        DriverError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            DriverError::io(format!("cannot run {prog} (is lvm2 installed?)"), source)
        }
        e => e,
    })
}

#[derive(Debug, Deserialize)]
struct Report {
    report: Vec<Section>,
}

#[derive(Debug, Deserialize)]
struct Section {
    #[serde(default)]
    vg: Vec<VgRow>,
    #[serde(default)]
    lv: Vec<LvRow>,
}

#[derive(Debug, Deserialize)]
struct VgRow {
    vg_name: String,
    vg_tags: String,
    lv_count: String,
}

#[derive(Debug, Deserialize)]
struct LvRow {
    lv_name: String,
    lv_active_locally: String,
    #[serde(default)]
    lv_skip_activation: String,
}

/// A volume group as `vgs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Vg {
    tags: Vec<String>,
    lv_count: u32,
}

/// A logical volume as `lvs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lv {
    name: String,
    active: bool,
    /// Flagged to be skipped by activation (`lvchange -k y`): its state does not count.
    skip: bool,
}

fn parse_report(what: &str, text: &str) -> Result<Report, DriverError> {
    serde_json::from_str(text).map_err(|e| {
        DriverError::io(
            format!("cannot read the {what} report"),
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

fn parse_vgs(name: &str, text: &str) -> Result<Option<Vg>, DriverError> {
    let report = parse_report("vgs", text)?;
    let Some(row) = report
        .report
        .into_iter()
        .flat_map(|s| s.vg)
        .find(|r| r.vg_name == name)
    else {
        return Ok(None);
    };
    vg_of(name, row).map(Some)
}

fn vg_of(name: &str, row: VgRow) -> Result<Vg, DriverError> {
    let lv_count = row.lv_count.trim().parse().map_err(|_| {
        DriverError::io(
            format!("cannot read the vgs report of volume group {name}"),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("lv_count {:?} is not a number", row.lv_count),
            ),
        )
    })?;
    Ok(Vg {
        tags: row
            .vg_tags
            .split(',')
            .map(|t| t.trim().trim_start_matches('@').to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        lv_count,
    })
}

impl From<LvRow> for Lv {
    fn from(r: LvRow) -> Lv {
        Lv {
            name: r.lv_name,
            active: !r.lv_active_locally.trim().is_empty(),
            skip: !r.lv_skip_activation.trim().is_empty(),
        }
    }
}

fn parse_lvs(text: &str) -> Result<Vec<Lv>, DriverError> {
    let report = parse_report("lvs", text)?;
    Ok(report
        .report
        .into_iter()
        .flat_map(|s| s.lv)
        .map(Lv::from)
        .collect())
}

/// LVM's rule for VG names; checked so the name is safe in a `--select` string.
fn check_name(name: &str) -> Result<(), DriverError> {
    let ok = !name.is_empty()
        && name.len() <= 127
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DriverError::Refused(format!(
            "invalid volume group name {name:?}"
        )))
    }
}

/// The VG, or `None` when it does not exist (`vgs` exits 0 with an empty report).
fn read_vg(env: &Lvm, name: &str) -> Result<Option<Vg>, DriverError> {
    check_name(name)?;
    let select = format!("vg_name=\"{name}\"");
    let out = lvm(
        env,
        &[
            "vgs",
            "--reportformat",
            "json",
            "--select",
            &select,
            "-o",
            "vg_name,vg_tags,lv_count",
        ],
        false,
    )?;
    parse_vgs(name, &out.stdout)
}

/// The VG and its LVs in one LVM command (`lvm fullreport VG`, the VG and LV sub-reports; the
/// others are cut to one field), or `None` when the VG does not exist. `fullreport` fails for a
/// missing VG: then `vgs` tells a missing VG from another failure.
fn read_full(env: &Lvm, name: &str) -> Result<Option<(Vg, Vec<Lv>)>, DriverError> {
    check_name(name)?;
    let mut args = FULLREPORT.to_vec();
    args.push(name);
    let out = lvm(env, &args, false);
    match out {
        Ok(out) => match parse_vgs(name, &out.stdout)? {
            Some(vg) => Ok(Some((vg, parse_lvs(&out.stdout)?))),
            None => Ok(None),
        },
        Err(e) => match read_vg(env, name)? {
            None => Ok(None),
            Some(_) => Err(e),
        },
    }
}

/// The `fullreport` arguments: the VG and LV sub-reports, the others cut to one field.
const FULLREPORT: [&str; 24] = [
    "lvm",
    "fullreport",
    "--reportformat",
    "json",
    "--configreport",
    "vg",
    "-o",
    "vg_name,vg_tags,lv_count",
    "--configreport",
    "lv",
    "-o",
    "lv_name,lv_active_locally,lv_skip_activation",
    "--configreport",
    "pv",
    "-o",
    "pv_uuid",
    "--configreport",
    "pvseg",
    "-o",
    "pvseg_start",
    "--configreport",
    "seg",
    "-o",
    "seg_start",
];

/// The VGs of a status walk and their LVs, from one `lvm fullreport` of them all (of every VG
/// of the host when the walk did not name them): the shared reads of [`crate::reads`]. It
/// answers for the VGs it reported; a status of any other VG (missing, or one LVM could not
/// report) reads its own, for its own answer and error.
#[derive(Debug)]
pub struct LvmSnapshot {
    vgs: Vec<(Vg, Vec<Lv>, String)>,
}

impl LvmSnapshot {
    /// One `fullreport` of `names` (every VG when `None`). LVM exits non-zero when one of the
    /// named VGs is missing, and still reports the others: they are kept. `None` when nothing
    /// could be read.
    fn read(env: &Lvm, names: Option<&[String]>) -> Option<LvmSnapshot> {
        let mut args = FULLREPORT.to_vec();
        if let Some(names) = names {
            args.extend(
                names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| check_name(n).is_ok()),
            );
        }
        let cmdline = args.join(" ");
        let out = lvm_run(env, &args, &cmdline, LVM_TIMEOUT).ok()?;
        let vgs = parse_fullreport_all(&String::from_utf8_lossy(&out.stdout)).ok()?;
        Some(LvmSnapshot { vgs })
    }

    fn find(&self, name: &str) -> Option<(Vg, Vec<Lv>)> {
        self.vgs
            .iter()
            .find(|(_, _, n)| n == name)
            .map(|(vg, lvs, _)| (vg.clone(), lvs.clone()))
    }
}

/// A `fullreport` of several VGs: one section per VG, its `vg` row and its `lv` rows.
fn parse_fullreport_all(text: &str) -> Result<Vec<(Vg, Vec<Lv>, String)>, DriverError> {
    let report = parse_report("fullreport", text)?;
    let mut out = Vec::new();
    for section in report.report {
        let Some(name) = section.vg.first().map(|r| r.vg_name.clone()) else {
            continue;
        };
        let one = Report {
            report: vec![section],
        };
        let (vg, lvs) = split_section(&name, one)?;
        out.push((vg, lvs, name));
    }
    Ok(out)
}

/// The VG row named `name` and every LV row of a report.
fn split_section(name: &str, report: Report) -> Result<(Vg, Vec<Lv>), DriverError> {
    let mut vg_rows = Vec::new();
    let mut lvs = Vec::new();
    for s in report.report {
        vg_rows.extend(s.vg);
        lvs.extend(s.lv.into_iter().map(Lv::from));
    }
    let row = vg_rows
        .into_iter()
        .find(|r| r.vg_name == name)
        .ok_or_else(|| missing(name))?;
    Ok((vg_of(name, row)?, lvs))
}

/// The LVs that should be active and are not.
fn inactive(lvs: &[Lv]) -> Vec<String> {
    lvs.iter()
        .filter(|lv| !lv.active && !lv.skip)
        .map(|lv| lv.name.clone())
        .collect()
}

/// Tags of other nodes: every tag but ours.
fn foreign<'a>(vg: &'a Vg, nodename: &str) -> Vec<&'a str> {
    vg.tags
        .iter()
        .map(String::as_str)
        .filter(|t| *t != nodename && fence_token(t).is_none())
        .collect()
}

/// The tag that carries a cluster's fencing token: `berth_fence_<token>`.
const FENCE_TAG: &str = "berth_fence_";

fn fence_token(tag: &str) -> Option<i64> {
    tag.strip_prefix(FENCE_TAG)?.parse().ok()
}

/// The newest fencing token the VG carries.
fn vg_fence(vg: &Vg) -> Option<i64> {
    vg.tags.iter().filter_map(|t| fence_token(t)).max()
}

/// A start under fencing token `mine` is refused when the VG carries a newer one: another node
/// took the service since (this start's ownership is stale). `--force` does not override it.
fn check_fence(ctx: &Ctx<'_>, name: &str, vg: &Vg) -> Result<(), DriverError> {
    match (ctx.fence, vg_fence(vg)) {
        (Some(mine), Some(theirs)) if theirs > mine => Err(DriverError::Refused(format!(
            "volume group {name} carries fencing token {theirs}, newer than this start's \
             {mine}: another node took the service since; refusing"
        ))),
        _ => Ok(()),
    }
}

/// The `vgchange` arguments that leave only `mine` as the VG's fencing token.
fn fence_args(ctx: &Ctx<'_>, vg: &Vg) -> Vec<String> {
    let Some(mine) = ctx.fence else {
        return Vec::new();
    };
    let mut args = Vec::new();
    for t in &vg.tags {
        if fence_token(t).is_some_and(|x| x != mine) {
            args.push("--deltag".to_string());
            args.push(format!("@{t}"));
        }
    }
    if !vg.tags.iter().any(|t| fence_token(t) == Some(mine)) {
        args.push("--addtag".to_string());
        args.push(format!("@{FENCE_TAG}{mine}"));
    }
    args
}

fn missing(name: &str) -> DriverError {
    DriverError::Missing {
        what: "volume group",
        path: name.into(),
    }
}

fn refuse_foreign(name: &str, others: &[&str]) -> DriverError {
    DriverError::Refused(format!(
        "volume group {name} is tagged by node {}: refusing to take it over (use --force)",
        others.join(", ")
    ))
}

/// What the precheck read, for the start of the same resource ([`Ctx::keep_prechecked`]).
#[derive(Debug)]
struct Prechecked {
    vgname: String,
    vg: Vg,
    lvs: Vec<Lv>,
}

/// Before any resource starts: the VG exists and no other node holds it (unless `--force`).
/// Its report (one `lvm fullreport`, as the start reads) is kept for the start, which then
/// reads the VG again only when an earlier resource of the action changed the host.
pub fn precheck(ctx: &Ctx<'_>, rid: Rid, spec: &VgSpec) -> Result<(), DriverError> {
    let name = &spec.vgname;
    let (vg, lvs) = read_full(&Lvm::for_ctx(ctx), name)?.ok_or_else(|| missing(name))?;
    check_fence(ctx, name, &vg)?;
    let others = foreign(&vg, ctx.nodename);
    if !others.is_empty() && !ctx.force {
        return Err(refuse_foreign(name, &others));
    }
    ctx.keep_prechecked(
        rid,
        Prechecked {
            vgname: name.clone(),
            vg,
            lvs,
        },
    );
    Ok(())
}

/// Up when tagged here and every LV is active; warn when tagged here with an inactive LV.
pub fn status(ctx: &Ctx<'_>, spec: &VgSpec) -> ResourceState {
    let mut log = Vec::new();
    let name = &spec.vgname;
    let shared = crate::reads::current()
        .and_then(|r| r.shared(|| LvmSnapshot::read(&Lvm::for_ctx(ctx), r.vgnames())))
        .and_then(|snap| snap.find(name));
    let read = match shared {
        Some(found) => Ok(Some(found)),
        None => read_full(&Lvm::for_ctx(ctx), name),
    };
    let status = match read {
        Err(e) => {
            log.push(LogEntry::warn(e.to_string()));
            Status::Undef
        }
        Ok(None) => {
            log.push(LogEntry::info(format!(
                "volume group {name} does not exist"
            )));
            Status::Down
        }
        Ok(Some((vg, lvs))) => {
            let tagged = vg.tags.iter().any(|t| t == ctx.nodename);
            let off = inactive(&lvs);
            if tagged && off.is_empty() {
                Status::Up
            } else if tagged {
                log.push(LogEntry::warn(format!(
                    "tagged with {} but inactive: {}",
                    ctx.nodename,
                    off.join(", ")
                )));
                Status::Warn
            } else {
                if (off.len() as u64) < u64::from(vg.lv_count) {
                    log.push(LogEntry::warn(format!(
                        "some logical volumes of {name} are active but it is not tagged with {}",
                        ctx.nodename
                    )));
                }
                Status::Down
            }
        }
    };
    ResourceState::new(status, label(spec), log)
}

/// Tag the VG for this node and activate it. `--force` takes it over from another node.
/// The VG's report is the precheck's when the engine kept it (nothing changed since), else
/// read now.
pub fn start(ctx: &Ctx<'_>, rid: Rid, spec: &VgSpec) -> Result<Outcome, DriverError> {
    let name = spec.vgname.as_str();
    let env = Lvm::for_ctx(ctx);
    let kept = ctx
        .take_prechecked::<Prechecked>(rid)
        .filter(|p| p.vgname == name);
    let (vg, lvs) = match kept {
        Some(p) => (p.vg, p.lvs),
        None => read_full(&env, name)?.ok_or_else(|| missing(name))?,
    };
    check_fence(ctx, name, &vg)?;
    let fence = fence_args(ctx, &vg);
    let tag = format!("@{}", ctx.nodename);
    let others = foreign(&vg, ctx.nodename);
    if !others.is_empty() {
        if !ctx.force {
            return Err(refuse_foreign(name, &others));
        }
        warn!(
            "--force: taking volume group {name} over from node {}",
            others.join(", ")
        );
        for other in &others {
            lvm(
                &env,
                &["vgchange", "--deltag", &format!("@{other}"), name],
                true,
            )?;
        }
    }
    let tagged = vg.tags.iter().any(|t| t == ctx.nodename);
    let off = inactive(&lvs);
    if tagged && off.is_empty() {
        if !fence.is_empty() {
            let mut args: Vec<&str> = vec!["vgchange"];
            args.extend(fence.iter().map(String::as_str));
            args.push(name);
            lvm(&env, &args, true)?;
        }
        info!("{name} is already up");
        return Ok(if others.is_empty() {
            Outcome::AlreadyDone
        } else {
            Outcome::Changed
        });
    }
    if !tagged || !fence.is_empty() {
        let mut args: Vec<&str> = vec!["vgchange"];
        if !tagged {
            args.extend(["--addtag", tag.as_str()]);
        }
        args.extend(fence.iter().map(String::as_str));
        args.push(name);
        lvm(&env, &args, true)?;
    }
    if let Err(e) = lvm(&env, &["vgchange", "-a", "y", name], true) {
        if !tagged && let Err(undo) = lvm(&env, &["vgchange", "--deltag", &tag, name], true) {
            warn!("{undo}");
        }
        return Err(e);
    }
    Ok(Outcome::Changed)
}

/// Deactivate the VG (retried a few times) and remove this node's tag.
pub fn stop(ctx: &Ctx<'_>, spec: &VgSpec) -> Result<Outcome, DriverError> {
    let name = spec.vgname.as_str();
    let env = Lvm::for_ctx(ctx);
    let Some((vg, lvs)) = read_full(&env, name)? else {
        info!("volume group {name} does not exist: already down");
        return Ok(Outcome::AlreadyDone);
    };
    let tagged = vg.tags.iter().any(|t| t == ctx.nodename);
    let active = lvs.iter().any(|lv| lv.active);
    if !tagged && !active {
        info!("{name} is already down");
        return Ok(Outcome::AlreadyDone);
    }
    if active {
        let mut attempt = 1;
        loop {
            match lvm(&env, &["vgchange", "-a", "n", name], true) {
                Ok(_) => break,
                Err(e) if attempt >= DEACTIVATE_TRIES => return Err(e),
                Err(e) => {
                    warn!("{e}: retrying ({attempt}/{DEACTIVATE_TRIES})");
                    attempt += 1;
                    std::thread::sleep(DEACTIVATE_PAUSE);
                }
            }
        }
    }
    if tagged {
        lvm(
            &env,
            &["vgchange", "--deltag", &format!("@{}", ctx.nodename), name],
            true,
        )?;
    }
    Ok(Outcome::Changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vgs_report_is_read() {
        let text = r#"  {
      "report": [
          {
              "vg": [
                  {"vg_name":"other", "vg_tags":"", "lv_count":"3"},
                  {"vg_name":"vg1", "vg_tags":"node1,node.2", "lv_count":"2"}
              ]
          }
      ]
  }"#;
        let vg = parse_vgs("vg1", text).unwrap().unwrap();
        assert_eq!(vg.tags, ["node1", "node.2"]);
        assert_eq!(vg.lv_count, 2);
        assert_eq!(foreign(&vg, "node1"), ["node.2"]);
        assert!(parse_vgs("nope", text).unwrap().is_none());
        let empty = r#"{"report":[{"vg":[]}]}"#;
        assert!(parse_vgs("vg1", empty).unwrap().is_none());
        let untagged = r#"{"report":[{"vg":[{"vg_name":"vg1","vg_tags":"","lv_count":"0"}]}]}"#;
        assert_eq!(
            parse_vgs("vg1", untagged).unwrap().unwrap(),
            Vg {
                tags: vec![],
                lv_count: 0
            }
        );
        let e = parse_vgs("vg1", "not json").unwrap_err().to_string();
        assert!(e.contains("vgs"), "{e}");
    }

    #[test]
    fn a_bad_lv_count_is_an_error_not_zero() {
        // Read as 0, it made status skip the LV check and report up with LVs inactive.
        let text = r#"{"report":[{"vg":[{"vg_name":"vg1","vg_tags":"n1","lv_count":"x2"}]}]}"#;
        let e = parse_vgs("vg1", text).unwrap_err().to_string();
        assert!(e.contains("vg1") && e.contains("\"x2\""), "{e}");
    }

    #[test]
    fn fullreport_gives_the_vg_and_its_lvs() {
        // `lvm fullreport --reportformat json` as LVM 2.03.16 prints it (sub-reports cut).
        let text = r#"  {
      "report": [
          {
              "vg": [
                  {"vg_name":"vgfr", "vg_tags":"node1", "lv_count":"1"}
              ]
              ,
              "pv": [
                  {"pv_uuid":"abc"}
              ]
              ,
              "lv": [
                  {"lv_name":"lv1", "lv_active_locally":"", "lv_skip_activation":""}
              ]
              ,
              "pvseg": [
                  {"pvseg_start":"0"},
                  {"pvseg_start":"2"}
              ]
              ,
              "seg": [
                  {"seg_start":"0 "}
              ]
          }
      ]
  }"#;
        let vg = parse_vgs("vgfr", text).unwrap().unwrap();
        assert_eq!(vg.tags, ["node1"]);
        let lvs = parse_lvs(text).unwrap();
        assert_eq!(inactive(&lvs), ["lv1"]);
    }

    #[test]
    fn lvs_report_is_read() {
        let text = r#"{"report":[{"lv":[
            {"lv_name":"lv1", "lv_active_locally":"active locally", "lv_skip_activation":""},
            {"lv_name":"lv2", "lv_active_locally":"", "lv_skip_activation":""},
            {"lv_name":"lv3", "lv_active_locally":"", "lv_skip_activation":"skip activation"}
        ]}]}"#;
        let lvs = parse_lvs(text).unwrap();
        assert_eq!(lvs.len(), 3);
        assert!(lvs[0].active && !lvs[1].active && lvs[2].skip);
    }

    #[test]
    fn names_are_checked() {
        for ok in ["vg1", "vg.a+b_c-d", "VG"] {
            check_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "-vg", "vg 1", "vg\"x", "vg/x", ".."] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid volume group name"), "{e}");
        }
    }

    #[test]
    fn failures_are_summarized_once() {
        let err = "  /dev/mapper/control: open failed: No such device\n  Failure.\n  \
                   /dev/mapper/control: open failed: No such device\n  Failure.\n";
        assert_eq!(
            summarize(
                err,
                "  0 logical volume(s) in volume group \"vg\" now active\n"
            ),
            "/dev/mapper/control: open failed: No such device; Failure.; \
             0 logical volume(s) in volume group \"vg\" now active"
        );
    }

    #[test]
    fn a_hung_lvm_command_is_bounded() {
        let began = std::time::Instant::now();
        let env = Lvm::default();
        let e = lvm_within(&env, &["sleep", "30"], false, Duration::from_millis(200)).unwrap_err();
        assert!(began.elapsed() < Duration::from_secs(10));
        assert_eq!(e.to_string(), "sleep 30 did not finish within 0.2s");
        let e = lvm(&env, &["/nonexistent/lvm-prog"], false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot run /nonexistent/lvm-prog (is lvm2 installed?)"),
            "{e}"
        );
    }

    #[test]
    fn system_dir_is_the_host_config_without_aio_and_follows_its_changes() {
        let host = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("lvm.conf"), "global {\n\tuse_aio = 1\n}\n").unwrap();
        std::fs::write(host.path().join("lvmlocal.conf"), "local {}\n").unwrap();
        std::fs::create_dir(host.path().join("backup")).unwrap();
        let dir = system_dir(host.path(), run.path()).unwrap();
        assert_eq!(dir, run.path().join("lvm"));
        let conf = std::fs::read_to_string(dir.join("lvm.conf")).unwrap();
        assert!(conf.starts_with("# berth: from "), "{conf}");
        let host_at = conf.find("use_aio = 1").unwrap();
        let ours_at = conf.find("use_aio = 0").unwrap();
        assert!(
            host_at < ours_at,
            "the host's setting must come first: {conf}"
        );
        for e in ["lvmlocal.conf", "backup"] {
            assert_eq!(
                std::fs::read_link(dir.join(e)).unwrap(),
                host.path().join(e)
            );
        }
        // Unchanged host: the same file, not rewritten.
        let before = std::fs::metadata(dir.join("lvm.conf"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(system_dir(host.path(), run.path()).unwrap(), dir);
        let after = std::fs::metadata(dir.join("lvm.conf"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
        // The host's lvm.conf changes (size and mtime): remade. A new entry: linked.
        std::fs::write(host.path().join("lvm.conf"), "devices {}\n").unwrap();
        std::fs::create_dir(host.path().join("devices")).unwrap();
        system_dir(host.path(), run.path()).unwrap();
        let conf = std::fs::read_to_string(dir.join("lvm.conf")).unwrap();
        assert!(
            conf.contains("devices {}") && !conf.contains("use_aio = 1"),
            "{conf}"
        );
        assert!(dir.join("devices").is_symlink());
        // No host lvm.conf: none (LVM runs with the host's config).
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(system_dir(empty.path(), run.path()), None);
    }

    #[test]
    fn refusal_names_the_node() {
        let e = refuse_foreign("vg1", &["node2"]).to_string();
        assert_eq!(
            e,
            "volume group vg1 is tagged by node node2: refusing to take it over (use --force)"
        );
    }
}
