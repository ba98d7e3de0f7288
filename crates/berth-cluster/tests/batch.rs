//! Owner keys taken in batches against a real etcd (the cluster rig's): every take keeps the
//! answer a lone take would give (another node's key refused, this node's confirmed, a
//! decision overtaken by a target change refused), and the takes asked together go in a few
//! transactions, not one each.

use std::collections::BTreeSet;
use std::os::fd::AsFd as _;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use berth_cluster::{ClusterError, NodeRecord, OwnerWhy, Store, Taker, Target};
use berth_model::config::{ClusterConfig, SplitAction};
use berth_testkit::cluster::{Etcd, Lan};
use berth_testkit::{Netns, require_root};

fn cfg(etcd: &Etcd) -> ClusterConfig {
    ClusterConfig {
        name: "t".to_string(),
        etcd: etcd.endpoints(),
        etcd_ca: None,
        etcd_cert: None,
        etcd_key: None,
        lease_ttl: Duration::from_secs(10),
        split_action: SplitAction::Stop,
        ready_period: Duration::from_secs(1),
    }
}

fn record(node: &str) -> NodeRecord {
    NodeRecord {
        name: node.to_string(),
        version: "test".to_string(),
        listen: "10.0.0.1:1215".to_string(),
        address: String::new(),
        since_ms: 1,
        updated_ms: 1,
        services: Default::default(),
    }
}

/// Run `f` on a thread in a namespace of its own on the lan (every socket it opens is there).
fn on_lan<T: Send + 'static>(
    lan: &Lan,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = Netns::new("tbat");
    lan.attach(&ns, "eth0", 240);
    let path = ns.path();
    let r = std::thread::spawn(move || -> Result<T> {
        let file = std::fs::File::open(&path).context("open the netns")?;
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("the test thread panicked"))?;
    drop(ns);
    r
}

#[test]
fn owner_keys_are_taken_in_batches_and_each_take_keeps_its_compares() -> Result<()> {
    require_root();
    let lan = Lan::new();
    let etcd = Etcd::start(&lan, 1);
    let cfg = cfg(&etcd);
    on_lan(&lan, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let n1 = Store::connect(&cfg, "n1", Duration::from_secs(5)).await?;
            let n2 = Store::connect(&cfg, "n2", Duration::from_secs(5)).await?;
            let (l1, l2) = (n1.grant(30).await?, n2.grant(30).await?);
            n1.put_node(&record("n1"), l1).await?;
            n2.put_node(&record("n2"), l2).await?;
            let names: Vec<String> = (0..300).map(|i| format!("s{i:03}")).collect();
            let why = OwnerWhy::Failover;
            // n2 owns s000..s009; n1 owns s010 already.
            for s in &names[..10] {
                n2.acquire(s, l2, &why).await?;
            }
            let before = n1.acquire(&names[10], l1, &why).await?;
            // The decision reads the view here; s020's target changes after it.
            let decided = n1.snapshot().await?.revision;
            n1.set_target(&names[20], Target::Stopped).await?;
            let taker = Taker::spawn(n1.clone(), &tokio::runtime::Handle::current());
            let results = futures_util::future::join_all(
                names.iter().map(|s| taker.take(s, l1, &why, Some(decided))),
            )
            .await;
            let mut tokens = BTreeSet::new();
            for (s, r) in names.iter().zip(&results) {
                let i: usize = s[1..].parse()?;
                match (i, r) {
                    (0..10, Err(ClusterError::OwnedBy { owner, .. })) => {
                        ensure!(owner == "n2", "{s}: owned by {owner}, not n2")
                    }
                    (10, Ok(o)) => ensure!(o.token == before.token, "{s}: not confirmed: {o:?}"),
                    (20, Err(ClusterError::ChangedSince { .. })) => {}
                    (11.., Ok(o)) if i != 20 => {
                        ensure!(o.record.node == "n1" && o.lease == l1, "{s}: {o:?}");
                        let now = n1.owner(s).await?.context("no owner key")?;
                        ensure!(
                            now.token == o.token,
                            "{s}: token {} in etcd, {} told",
                            now.token,
                            o.token
                        );
                        tokens.insert(o.token);
                    }
                    _ => return Err(anyhow!("{s}: unexpected answer {r:?}")),
                }
            }
            // 288 keys taken in batches of up to 42 (3 compares each): a few transactions,
            // where lone takes would be 288.
            ensure!(
                tokens.len() <= 20,
                "288 keys took {} transactions",
                tokens.len()
            );
            ensure!(n1.owner(&names[20]).await?.is_none(), "s020 was taken");
            Ok(())
        })
    })
}
