//! `parse-bench`: how long reading one service file takes, in process (every `svc` command reads
//! all of a node's files; svcd reads a file again when it changes). Each case is parsed ROUNDS
//! times in a row, eleven times; the median of the eleven per-parse means is printed.
//!
//! `cargo build --release -p berth-bench && target/release/parse-bench [ROUNDS]`

use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use berth_model::ServiceConfig;

const CASES: &[(&str, &str)] = &[
    (
        "ip + vg + fs",
        "[service]\nnodes = [\"n1\"]\n[ip.1]\nipname = \"10.0.0.5\"\nipdev = \"eth0\"\n\
         netmask = \"24\"\n[vg.1]\nname = \"datavg\"\n[fs.1]\ndev = \"/dev/datavg/data\"\n\
         mnt = \"/srv/web\"\ntype = \"ext4\"\n",
    ),
    (
        "container, keywords only",
        "[container.1]\nrun_image = \"busybox\"\nrun_command = \"/bin/sh\"\n\
         volumes = [\"/srv/a:/a:rw\"]\nports = [\"8080:80\"]\nmemory = \"512m\"\n",
    ),
    (
        "container, the seed's run_args (-v)",
        "[container.1]\nrun_image = \"busybox\"\nrun_command = \"/bin/sh\"\n\
         run_args = \"-v /opt/docker.opensvc.com/vol1:/vol1:rw\"\n",
    ),
    (
        "container, 10 run_args flags",
        "[container.1]\nrun_image = \"busybox\"\nrun_command = \"/bin/sh\"\n\
         run_args = \"-ti -e A=1 -v /srv/a:/a:rw -p 8080:80 -m 512m --cpus 1.5 \
         --restart on-failure:3 --label a=b --init -h web\"\n",
    ),
];

fn main() -> anyhow::Result<()> {
    let rounds: u32 = match std::env::args().nth(1) {
        Some(n) => n.parse().context("ROUNDS: a whole number")?,
        None => 2000,
    };
    let path = Path::new("/etc/berth/services/web.toml");
    println!("| case | one parse (median of 11 means of {rounds}) |");
    println!("| --- | --- |");
    for (case, text) in CASES {
        let mut means = Vec::new();
        for _ in 0..11 {
            let t = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(ServiceConfig::parse(path, text).context(*case)?);
            }
            means.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds));
        }
        means.sort_by(f64::total_cmp);
        println!("| {case} | {:.1} µs |", means[5]);
    }
    Ok(())
}
