//! The service-file commands: `get`, `set`, `unset`, `enable`, `disable`, `validate config`,
//! `edit config`. Every change is checked by loading the new text as the loader does
//! (`berth_model::config::edit`), then written next to the file, synced and renamed over it: a
//! refused edit leaves the file as it was, and a crash leaves the old file or the new one, never
//! half of one. Without a cluster, the file changes on this node only; in a cluster, every
//! change goes through etcd (the cluster's one copy of the file) with a compare on the
//! revision it read, so a concurrent change is refused, naming it; this node's copy is updated
//! too, and every other node's svcd writes its own.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use berth_engine::load::{LoadError, load_context, load_file_on, service_file, service_names};
use berth_manual::{err, errln, outln};
use berth_model::config::edit::{self, Change, KwPath};
use berth_model::config::{ConfigWarning, ServiceConfig};
use berth_model::paths::Paths;

use berth_cluster::files::{FileError, FileFormat};

use crate::cluster::ClusterCli;
use crate::{Failure, usage};

/// Where a change reads the file from and where it writes it.
struct Source {
    /// The file (its name tells the format): this node's copy, or where it would be.
    file: PathBuf,
    /// The bytes the change starts from.
    original: Vec<u8>,
    /// In a cluster: the revision of the etcd copy read (0: etcd has none yet).
    rev: Option<i64>,
    /// This node's copy and its bytes, if it has one.
    local: Option<(PathBuf, Vec<u8>)>,
}

fn file_failure(e: FileError) -> Failure {
    match e {
        FileError::TooLarge { .. } => usage(e.to_string()),
        other => Failure::Failed(anyhow!(other)),
    }
}

/// The file of `svc` to change: in a cluster, the etcd copy (else this node's, which the
/// write then publishes); without one, this node's.
fn source(paths: &Paths, cluster: Option<&ClusterCli>, svc: &str) -> Result<Source, Failure> {
    let Some(c) = cluster else {
        let file = file_of(paths, svc)?;
        let original = read(&file)?;
        return Ok(Source {
            local: Some((file.clone(), original.clone())),
            file,
            original,
            rev: None,
        });
    };
    let local_file = file_of(paths, svc);
    let local = match &local_file {
        Ok(f) => Some((f.clone(), read(f)?)),
        Err(_) => None,
    };
    match c.get_file(svc).map_err(Failure::Failed)? {
        Some(stored) => {
            let file = match &local {
                Some((f, _)) if stored.meta.format.matches(f) => f.clone(),
                _ => paths
                    .services_dir()
                    .join(format!("{svc}.{}", stored.meta.format.extension())),
            };
            Ok(Source {
                file,
                original: stored.bytes,
                rev: Some(stored.meta.revision),
                local,
            })
        }
        None => {
            // Not in etcd yet: this node's copy is the start (and the write publishes it).
            let file = local_file?;
            let original = read(&file)?;
            Ok(Source {
                file,
                original,
                rev: Some(0),
                local,
            })
        }
    }
}

/// Write `new` as the file of `svc`: in a cluster through etcd (compare on the revision read),
/// then this node's copy if it was the one read; else over this node's file.
fn save(cluster: Option<&ClusterCli>, svc: &str, src: &Source, new: &[u8]) -> Result<(), Failure> {
    let (Some(c), Some(rev)) = (cluster, src.rev) else {
        return replace_file(&src.file, &src.original, new);
    };
    let at = c
        .put_file(svc, FileFormat::of_path(&src.file), new, rev)
        .map_err(file_failure)?;
    errln!("{svc}: written to the cluster (revision {at}): every node of the service takes it");
    // svcd writes this node's copy (it alone, so it knows what the copy is based on).
    if let Some((file, _)) = &src.local {
        wait_for_copy(file, new);
    }
    Ok(())
}

/// How long svc waits for this node's svcd to write the cluster's new copy.
const COPY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Wait (bounded) until `file` holds `bytes`: this node's svcd writes the cluster's copy.
fn wait_for_copy(file: &Path, bytes: &[u8]) {
    let start = std::time::Instant::now();
    while start.elapsed() < COPY_WAIT {
        if std::fs::read(file).is_ok_and(|b| b == bytes) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::warn!(
        "{}: not yet written by this node's svcd (is it running?): it writes the cluster's copy when it runs",
        file.display()
    );
}

fn file_of(paths: &Paths, svc: &str) -> Result<PathBuf, Failure> {
    let file = service_file(paths, svc).map_err(crate::load_failure)?;
    // Edit through a symlink: replace the file it points to, not the link.
    Ok(std::fs::canonicalize(&file).unwrap_or(file))
}

fn read(file: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Failure::Failed)
}

fn text(file: &Path, bytes: &[u8]) -> Result<String, Failure> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        usage(format!(
            "{}: not valid UTF-8 (svc SVC validate config says where)",
            file.display()
        ))
    })
}

/// `--kw` and `--param`/`--value` as changes (`set`), or as keywords (`get`, `unset`).
pub struct Keywords<'a> {
    pub kw: &'a [String],
    pub param: Option<&'a str>,
    pub value: Option<&'a str>,
}

impl Keywords<'_> {
    fn paths(&self, cmd: &str) -> Result<Vec<KwPath>, Failure> {
        if self.value.is_some() {
            return Err(usage(format!(
                "svc SVC {cmd}: --value goes with set --param"
            )));
        }
        let mut all: Vec<&str> = self.kw.iter().map(String::as_str).collect();
        all.extend(self.param);
        if all.is_empty() {
            return Err(usage(format!("usage: svc SVC {cmd} --kw SECTION.KEY ...")));
        }
        all.iter()
            .map(|k| {
                k.parse::<KwPath>()
                    .map_err(|why| usage(format!("--kw {k:?}: {why}")))
            })
            .collect()
    }

    fn changes(&self) -> Result<Vec<Change>, Failure> {
        let mut out: Vec<Change> = self
            .kw
            .iter()
            .map(|k| Change::parse_assignment(k).map_err(usage))
            .collect::<Result<_, _>>()?;
        match (self.param, self.value) {
            (Some(p), Some(v)) => {
                out.push(Change::parse_assignment(&format!("{p}={v}")).map_err(usage)?)
            }
            (Some(_), None) => return Err(usage("svc SVC set --param KEY needs --value VALUE")),
            (None, Some(_)) => return Err(usage("svc SVC set --value needs --param KEY")),
            (None, None) => {}
        }
        if out.is_empty() {
            return Err(usage(
                "usage: svc SVC set --kw SECTION.KEY=VALUE [--kw ...] (or --param KEY --value VALUE)",
            ));
        }
        Ok(out)
    }
}

/// `svc SVC get --kw fs#1.mnt [--kw ...]`: each value on a line; exit 1 when one is not set.
pub fn get(paths: &Paths, svc: &str, kws: &Keywords<'_>) -> Result<(), Failure> {
    let wanted = kws.paths("get")?;
    let file = file_of(paths, svc)?;
    let text = text(&file, &read(&file)?)?;
    let mut missing = Vec::new();
    for kw in &wanted {
        match edit::get(&file, &text, kw).map_err(usage)? {
            Some(v) => outln!("{v}"),
            None => missing.push(kw.to_string()),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(anyhow!(
            "not set in {}: {}",
            file.display(),
            missing.join(", ")
        )))
    }
}

/// `svc SVC set --kw ...` / `unset --kw ...`.
pub fn set(
    paths: &Paths,
    cluster: Option<&ClusterCli>,
    svc: &str,
    kws: &Keywords<'_>,
    unset: bool,
) -> Result<(), Failure> {
    let changes = if unset {
        kws.paths("unset")?.into_iter().map(Change::Unset).collect()
    } else {
        kws.changes()?
    };
    change(paths, cluster, svc, &changes, !unset)
}

/// `svc SVC enable|disable [--rid ...]`: `disable = true` on the selected resources (every
/// resource without a selection, as OpenSVC disables "the whole service"); enable removes it.
pub fn enable(
    paths: &Paths,
    cluster: Option<&ClusterCli>,
    svc: &ServiceConfig,
    selector: &berth_model::order::Selector,
    on: bool,
) -> Result<(), Failure> {
    let changes: Vec<Change> = svc
        .resources
        .iter()
        .filter(|r| selector.matches(r))
        .map(|r| {
            let path = KwPath {
                section: r.rid.to_string(),
                key: "disable".to_string(),
            };
            if on {
                Change::Unset(path)
            } else {
                Change::Set(path, "true".to_string())
            }
        })
        .collect();
    if changes.is_empty() {
        return Err(usage(format!("service {}: no resource selected", svc.name)));
    }
    change(paths, cluster, &svc.name, &changes, false)
}

fn change(
    paths: &Paths,
    cluster: Option<&ClusterCli>,
    svc: &str,
    changes: &[Change],
    refuse_warnings: bool,
) -> Result<(), Failure> {
    let src = source(paths, cluster, svc)?;
    let file = src.file.clone();
    let text = text(&file, &src.original)?;
    let edited = edit::apply_on(&file, &text, changes, &load_context(paths)).map_err(usage)?;
    if refuse_warnings && !edited.new_warnings.is_empty() {
        let list: Vec<String> = edited
            .new_warnings
            .iter()
            .map(|w| format!("  {w}"))
            .collect();
        return Err(usage(format!(
            "refused, nothing written: berth would ignore what this sets:\n{}",
            list.join("\n")
        )));
    }
    if !edited.changed {
        outln!("{}: nothing changed", file.display());
        return Ok(());
    }
    save(cluster, svc, &src, edited.text.as_bytes())?;
    for line in what_changed(&file, &text, &edited.text, changes) {
        outln!("{line}");
    }
    Ok(())
}

/// One line per keyword `changes` touched whose value differs between `old` and `new` (the
/// texts of `file`): `fs#1.mnt = /srv/data (was /srv/web)`, `fs#2.mnt_opt unset (was ro)`.
fn what_changed(file: &Path, old: &str, new: &str, changes: &[Change]) -> Vec<String> {
    let mut paths: Vec<&KwPath> = changes.iter().map(Change::path).collect();
    paths.sort();
    paths.dedup();
    let value = |text: &str, p: &KwPath| edit::get(file, text, p).ok().flatten();
    paths
        .into_iter()
        .filter_map(|p| match (value(old, p), value(new, p)) {
            (a, b) if a == b => None,
            (Some(a), Some(b)) => Some(format!("{p} = {b} (was {a})")),
            (None, Some(b)) => Some(format!("{p} = {b} (was not set)")),
            (Some(a), None) => Some(format!("{p} unset (was {a})")),
            (None, None) => None,
        })
        .collect()
}

/// Write `new` over `file`, which must still hold `original`: a temporary file in the same
/// directory (same mode and owner), synced, renamed over it, the directory synced.
pub fn replace_file(file: &Path, original: &[u8], new: &[u8]) -> Result<(), Failure> {
    let now = read(file)?;
    if now != original {
        return Err(Failure::Failed(anyhow!(
            "{} changed while it was being edited: nothing written",
            file.display()
        )));
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta =
        std::fs::metadata(file).with_context(|| format!("cannot stat {}", file.display()))?;
    let write = || -> std::io::Result<()> {
        // `.web.toml.XXXX.tmp`: not a service file name, so no loader reads it meanwhile.
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        tmp.write_all(new)?;
        let f = tmp.as_file();
        f.set_permissions(meta.permissions())?;
        if let Err(e) = std::os::unix::fs::fchown(f, Some(meta.uid()), Some(meta.gid()))
            && e.kind() != std::io::ErrorKind::PermissionDenied
        {
            return Err(e);
        }
        f.sync_all()?;
        tmp.persist(file).map_err(|e| e.error)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write()
        .with_context(|| format!("cannot write {}", file.display()))
        .map_err(Failure::Failed)
}

/// `svc SVC validate config`, `svc validate config` (every service, and node.toml): the problems
/// of each file; exit 2 when a file does not load.
pub fn validate(paths: &Paths, svc: Option<&str>) -> Result<(), Failure> {
    let names = match svc {
        Some(s) => vec![s.to_string()],
        None => {
            if let Err(e) = berth_engine::load::node_config(paths) {
                outln!("{e}");
                return Err(Failure::Code(2));
            }
            for ignored in berth_engine::load::ignored_files(paths) {
                outln!("warning: {ignored}");
            }
            service_names(paths).map_err(crate::load_failure)?
        }
    };
    let mut broken = 0;
    let mut loaded_ok = Vec::new();
    // As this node reads them (`key@node` scopes, `{nodename}`); an error carries every other
    // error and warning of its file.
    let load = load_context(paths);
    for name in &names {
        let loaded = service_file(paths, name).and_then(|f| load_file_on(&f, &load));
        match loaded {
            Ok(s) => {
                for w in &s.warnings {
                    outln!("warning: {w}");
                }
                outln!(
                    "{}: ok ({} resources, {} warnings)",
                    s.name,
                    s.resources.len(),
                    s.warnings.len()
                );
                loaded_ok.push(s);
            }
            Err(e @ LoadError::NotFound { .. }) if svc.is_some() => {
                return Err(crate::load_failure(e));
            }
            Err(e) => {
                broken += 1;
                outln!("{e}");
                outln!("{name}: does not load");
            }
        }
    }
    if svc.is_none() {
        for dir in berth_engine::load::leftover_var_dirs(paths).map_err(crate::load_failure)? {
            outln!(
                "note: {} belongs to no service file (a deleted service's log, records and docker data): \
                 remove it with `rm -r {}` once it is no longer needed",
                dir.display(),
                dir.display()
            );
        }
    }
    // Node-wide: two services that would bring up (and take down) the same thing.
    let conflicts = if svc.is_none() {
        berth_model::claims::conflicts(&loaded_ok)
    } else {
        Vec::new()
    };
    for c in &conflicts {
        outln!("{c}");
    }
    if broken > 0 || !conflicts.is_empty() {
        Err(Failure::Code(2))
    } else {
        Ok(())
    }
}

fn print_warnings(ws: &[ConfigWarning]) {
    for w in ws {
        errln!("warning: {w}");
    }
}

/// `svc SVC edit config`: `$EDITOR` (else `$VISUAL`, else `vi`) on a copy; a copy that loads
/// replaces the file, one that does not is refused (on a terminal: edit it again?), the file left
/// as it was and the copy kept, its path printed.
pub fn edit_config(paths: &Paths, cluster: Option<&ClusterCli>, svc: &str) -> Result<(), Failure> {
    let src = source(paths, cluster, svc)?;
    let file = src.file.clone();
    let original = src.original.clone();
    let dir = tempfile::Builder::new()
        .prefix("berth-edit.")
        .tempdir()
        .context("cannot make a directory for the copy")?;
    // Same name as the file, so the editor knows the syntax.
    let copy = dir.path().join(file.file_name().unwrap_or_default());
    std::fs::write(&copy, &original).with_context(|| format!("cannot write {}", copy.display()))?;
    let editor = ["EDITOR", "VISUAL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_string());
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    loop {
        // As git runs it: the variable may hold arguments (`code --wait`).
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&copy)
            .status()
            .with_context(|| format!("cannot run the editor {editor:?}"))?;
        if !status.success() {
            let kept = dir.keep();
            return Err(Failure::Failed(anyhow!(
                "the editor {editor:?} failed ({status}): {} is unchanged (the copy: {})",
                file.display(),
                kept.join(copy.file_name().unwrap_or_default()).display()
            )));
        }
        let new = read(&copy)?;
        if new == original {
            errln!("{}: no change", file.display());
            return Ok(());
        }
        match ServiceConfig::check_bytes(&file, &new, &load_context(paths)).into_result() {
            Ok(s) => {
                print_warnings(&s.warnings);
                save(cluster, svc, &src, &new)?;
                errln!("{}: saved", file.display());
                return Ok(());
            }
            Err(e) => {
                errln!("{e}");
                if interactive && ask("the edited file does not load: edit it again? [Y/n] ") {
                    continue;
                }
                let kept = dir.keep();
                return Err(usage(format!(
                    "the edited file does not load: {} is unchanged; the edited copy is kept at {}",
                    file.display(),
                    kept.join(copy.file_name().unwrap_or_default()).display()
                )));
            }
        }
    }
}

fn ask(question: &str) -> bool {
    err!("{question}");
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    !matches!(answer.trim().to_ascii_lowercase().as_str(), "n" | "no")
}

/// `svc SVC create --config FILE`: a new service file, checked first (it must load). In a
/// cluster it is written to etcd (refused when the cluster has one: naming it) and every node
/// of the service takes it; this node's copy is written at once.
pub fn create(
    paths: &Paths,
    cluster: Option<&ClusterCli>,
    svc: &str,
    from: Option<&Path>,
) -> Result<(), Failure> {
    berth_model::config::keywords::validate_service_name(svc)
        .map_err(|why| usage(format!("bad service name {svc:?}: {why}")))?;
    let Some(from) = from else {
        return Err(usage(format!("usage: svc {svc} create --config FILE")));
    };
    let bytes = read(from)?;
    let format = FileFormat::of_path(from);
    let target = paths
        .services_dir()
        .join(format!("{svc}.{}", format.extension()));
    if let Ok(existing) = berth_engine::load::service_file(paths, svc) {
        return Err(Failure::Failed(anyhow!(
            "{svc} exists already ({}): change it with svc {svc} set / edit config, or svc {svc} delete it first",
            existing.display()
        )));
    }
    if let Err(e) = ServiceConfig::check_bytes(&target, &bytes, &load_context(paths)).into_result()
    {
        return Err(usage(format!(
            "{e}\nrefused, nothing written: {} does not load as {svc}",
            from.display()
        )));
    }
    if let Some(c) = cluster {
        let at = c.put_file(svc, format, &bytes, 0).map_err(file_failure)?;
        outln!("{svc}: created in the cluster (revision {at}): every node of the service takes it");
        // This node's svcd writes its copy, if the service may run here.
        let here = ServiceConfig::check_bytes(&target, &bytes, &load_context(paths))
            .into_result()
            .is_ok_and(|cfg| berth_engine::recipe::outside_nodes(&cfg, c.node()).is_none());
        if here {
            wait_for_copy(&target, &bytes);
        }
        return Ok(());
    }
    std::fs::create_dir_all(paths.services_dir())
        .with_context(|| format!("cannot make {}", paths.services_dir().display()))?;
    write_new(&target, &bytes)?;
    outln!("{svc}: {} written", target.display());
    Ok(())
}

/// Write a new file atomically (temp file in the same directory, fsync, rename).
fn write_new(file: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(file).map_err(|e| e.error)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write()
        .with_context(|| format!("cannot write {}", file.display()))
        .map_err(Failure::Failed)
}

/// Whether a node's view of a service says it runs there (up, warn, or partly).
fn runs(avail: berth_model::Status) -> bool {
    use berth_model::Status;
    !matches!(avail, Status::Down | Status::NotApplicable | Status::Undef)
}

/// `svc SVC delete`: remove the service file, refused while the service runs anywhere (this
/// node: `local_avail`; in a cluster: its owner key, or any node's record saying it runs).
/// In a cluster the etcd copy is deleted (compare on the revision read) and every node's svcd
/// removes its copy. The service's var dir (log, records) is left and reported.
pub fn delete(
    paths: &Paths,
    cluster: Option<&ClusterCli>,
    svc: &str,
    local_avail: Option<berth_model::Status>,
) -> Result<(), Failure> {
    if let Some(a) = local_avail
        && runs(a)
    {
        return Err(Failure::Failed(anyhow!(
            "refused: {svc} runs on this node ({a}): stop it first (svc {svc} stop)"
        )));
    }
    let local = berth_engine::load::service_file(paths, svc).ok();
    if let Some(c) = cluster {
        let view = c.snapshot().map_err(Failure::Failed)?;
        if let Some(o) = view.owners.get(svc) {
            return Err(Failure::Failed(anyhow!(
                "refused: {svc} runs on {} (owner key, fencing token {}): stop it first (svc {svc} stop)",
                o.record.node,
                o.token
            )));
        }
        let up: Vec<String> = view
            .nodes
            .iter()
            .filter(|(_, l)| l.record.services.get(svc).is_some_and(|s| runs(s.avail)))
            .map(|(n, _)| n.clone())
            .collect();
        if !up.is_empty() {
            return Err(Failure::Failed(anyhow!(
                "refused: {svc} runs on {} (as its svcd publishes): stop it first",
                up.join(", ")
            )));
        }
        match c.get_file(svc).map_err(Failure::Failed)? {
            Some(stored) => {
                let at = c
                    .delete_file(svc, stored.meta.revision)
                    .map_err(file_failure)?;
                outln!(
                    "{svc}: deleted from the cluster (revision {at}): every node removes its copy"
                );
            }
            None if local.is_none() => {
                return Err(crate::load_failure(
                    berth_engine::load::LoadError::NotFound {
                        svc: svc.to_string(),
                        dir: paths.services_dir(),
                    },
                ));
            }
            None => {}
        }
    } else if local.is_none() {
        return Err(crate::load_failure(
            berth_engine::load::LoadError::NotFound {
                svc: svc.to_string(),
                dir: paths.services_dir(),
            },
        ));
    }
    if let Some(file) = local {
        std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
        outln!("{svc}: {} removed", file.display());
    }
    let var = paths.service_var(svc);
    if var.exists() {
        outln!(
            "note: {} is left (the service's log, records and docker data): remove it with `rm -r {}` once it is no longer needed",
            var.display(),
            var.display()
        );
    }
    Ok(())
}
