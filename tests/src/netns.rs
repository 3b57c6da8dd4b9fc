//! Linux network namespaces for multi-node tests: N namespaces, each with one end of a veth
//! pair (address `10.<k>.<j>.<i+1>/24`), whose other end is on a bridge in the root namespace,
//! so every namespace reaches every other as separate machines on a LAN would.
//!
//! Needs root and `ip` ([`Netns::available`] says why not). Everything made is removed when
//! the value drops — its processes killed, namespaces deleted (their veth pairs go with them),
//! the bridge deleted — also when the test panics; namespaces a killed earlier run left behind
//! (their owner process gone) are removed on the next [`Netns::create`]. Delay and loss are not
//! injected here (`netem` is not installed): that belongs in the transport under test.
//! Names carry the process and a letter per set, so tests of one process (which run in
//! parallel) and of several never share a namespace or an interface.

use anyhow::{Context, bail};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace and bridge this harness makes.
const PREFIX: &str = "wrt";

/// How many sets this process has made: tests of one process run in parallel, so each set's
/// names carry its number as well as the process's.
static SETS: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces on one bridge.
pub struct Netns {
    names: Vec<String>,
    bridge: String,
    subnet: [u8; 3],
    /// What every name of this set starts with: the prefix, the process that made them, a
    /// letter for the set (`wrt12317a`; a veth name has at most 15 bytes).
    stem: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("run `ip`")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Netns {
    /// `None` if this machine can make namespaces here; why not otherwise.
    pub fn available() -> Option<String> {
        if !crate::running_as_root() {
            return Some("network namespaces need root".into());
        }
        match Command::new("ip").arg("-V").output() {
            Ok(out) if out.status.success() => None,
            _ => Some("`ip` (iproute2) is not installed".into()),
        }
    }

    /// Makes `n` namespaces on a bridge of their own.
    pub fn create(n: usize) -> anyhow::Result<Self> {
        anyhow::ensure!((1..=250).contains(&n), "1 to 250 namespaces, not {n}");
        remove_stale();
        let pid = std::process::id();
        let set = SETS.fetch_add(1, Ordering::Relaxed) % 26;
        let stem = format!("{PREFIX}{pid}{}", char::from(b'a' + set as u8));
        // Distinct per set, so that addresses in a test's log name one machine.
        let key = pid.wrapping_mul(26).wrapping_add(set);
        let subnet = [10, 200 + (key % 50) as u8, (key / 50 % 250) as u8];
        let bridge = format!("{stem}b");
        let mut netns = Self {
            names: Vec::new(),
            bridge: bridge.clone(),
            subnet,
            stem: stem.clone(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let name = format!("{stem}n{i}");
            ip(&["netns", "add", &name])?;
            netns.names.push(name.clone());
            let (inside, outside) = (format!("{stem}i{i}"), format!("{stem}o{i}"));
            ip(&[
                "link", "add", &inside, "type", "veth", "peer", "name", &outside,
            ])?;
            ip(&["link", "set", &inside, "netns", &name])?;
            ip(&["link", "set", &outside, "master", &bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            let address = format!("{}/24", netns.address(i));
            ip(&["-n", &name, "addr", "add", &address, "dev", &inside])?;
            ip(&["-n", &name, "link", "set", &inside, "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        Ok(netns)
    }

    /// How many namespaces there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Namespace `i`'s address.
    pub fn address(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, i as u8 + 1)
    }

    /// Cuts namespace `i` off silently: a blackhole route to it in every other namespace and
    /// to every other from it, so its packets, and those sent to it, vanish (no error, no
    /// reset: the network partition a dead switch makes).
    pub fn blackhole(&self, i: usize) -> anyhow::Result<()> {
        self.blackhole_routes(i, "add")
    }

    /// Undoes [`Netns::blackhole`]: namespace `i` reaches the others again.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        self.blackhole_routes(i, "del")
    }

    /// Adds or deletes (`action`) the blackhole routes between `i` and every other.
    fn blackhole_routes(&self, i: usize, action: &str) -> anyhow::Result<()> {
        for j in (0..self.len()).filter(|j| *j != i) {
            for (from, to) in [(i, j), (j, i)] {
                let to = format!("{}/32", self.address(to));
                ip(&["-n", &self.names[from], "route", action, "blackhole", &to])?;
            }
        }
        Ok(())
    }

    /// Sets namespace `i`'s link down (as a pulled cable).
    pub fn link_down(&self, i: usize) -> anyhow::Result<()> {
        let inside = format!("{}i{i}", self.stem);
        ip(&["-n", &self.names[i], "link", "set", &inside, "down"])
    }

    /// The launcher that runs a program in namespace `i` (`ip netns exec NAME`; it execs the
    /// program, so a child started through it is the program itself).
    pub fn launcher(&self, i: usize) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.names[i].clone(),
        ]
    }
}

/// Kills what runs in namespace `name` and deletes it.
fn remove_namespace(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
    let _ = ip(&["netns", "del", name]);
}

/// Removes namespaces and bridges of earlier runs whose process is gone.
fn remove_stale() {
    let owner = |name: &str| -> Option<u32> {
        let rest = name.strip_prefix(PREFIX)?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            if owner(name).is_some_and(|pid| !alive(pid)) {
                remove_namespace(name);
            }
        }
    }
    if let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split(':').nth(1).unwrap_or_default().trim();
            if owner(name).is_some_and(|pid| !alive(pid)) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            remove_namespace(name);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
