//! One control group per bubblewrap job: memory (and swap) bounded as a whole, so
//! memfd, /dev/shm and tmpfs pages count; a pids limit for the job whatever uid the
//! worker runs as; a CPU quota; and OOM read from the kernel's own counter, not
//! guessed from what the runtime printed. The group also lets the worker kill every
//! process of a job, including one that left the process group with `setsid`.
//!
//! Both hierarchies are handled, because volunteers' machines have both:
//! - cgroup v2: jobs are children of the worker's parent group, with `memory.max`,
//!   `memory.swap.max` 0, `pids.max` and `cpu.max`. The "no internal processes" rule
//!   means a worker that lives in the group it delegates from first moves itself into
//!   a `worker` leaf, as systemd's delegated services do.
//! - cgroup v1 (still the default of some container hosts and older distributions):
//!   one directory per controller, `memory.limit_in_bytes` and
//!   `memory.memsw.limit_in_bytes`, `pids.max`, `cpu.cfs_quota_us`.
//!
//! The parent is the worker's own group (a root worker, or one started in a delegated
//! unit such as `systemd-run --user --scope -p Delegate=yes`) or `cgroup_parent` from
//! the config, a path as /proc/self/cgroup prints it. A job enters its group between
//! fork and exec by writing "0" (itself) to each `cgroup.procs`, so nothing it runs is
//! ever outside the group.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// A limit a job's group enforces, named as `host-info` and the dashboard name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    Memory,
    Swap,
    Pids,
    Cpu,
}

impl Limit {
    pub const ALL: [Limit; 4] = [Limit::Memory, Limit::Swap, Limit::Pids, Limit::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Swap => "swap",
            Limit::Pids => "pids",
            Limit::Cpu => "cpu",
        }
    }
}

/// The limits of one job's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    pub memory_bytes: u64,
    pub pids: u32,
    pub cpu_millicores: u32,
}

/// Where job groups are made, as found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    V2 {
        /// The directory job groups are created in.
        parent: PathBuf,
        controllers: Vec<Limit>,
    },
    V1 {
        memory: Option<PathBuf>,
        /// `memory.memsw.*` exists (swap accounting is on).
        memsw: bool,
        pids: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
}

/// The CPU quota's period, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

impl Cgroups {
    /// Finds the hierarchy and the parent group on this host. `parent` overrides the
    /// worker's own group. An error says why no limit at all is available.
    /// `inspect_only` (for `host-info`) changes nothing on the host: on v2 it neither
    /// moves processes nor enables controllers, and reports what it could enable.
    pub fn detect(parent: Option<&str>, inspect_only: bool) -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = Mounts::parse(&mountinfo);
        let swap_in_use = std::fs::read_to_string("/proc/swaps")
            .map(|s| s.lines().count() > 1)
            .unwrap_or(false);
        let found = Self::locate(&mounts, &own, parent)?;
        found.prepare(swap_in_use, inspect_only)
    }

    /// Where the groups would go, from the mount table and /proc/self/cgroup; pure.
    fn locate(mounts: &Mounts, own: &str, parent: Option<&str>) -> Result<Cgroups, String> {
        let own = OwnGroups::parse(own);
        let v1_controller = |name: &str| -> Option<PathBuf> {
            let mount = mounts
                .v1
                .iter()
                .find(|(c, _, _)| c.iter().any(|c| c == name))?;
            let path = parent.or_else(|| own.v1_path(&mount.0))?;
            Some(join_cgroup_path(&mount.2, strip_root(path, &mount.1)))
        };
        let v1 = (
            v1_controller("memory"),
            v1_controller("pids"),
            v1_controller("cpu"),
        );
        if v1.0.is_some() || v1.1.is_some() || v1.2.is_some() {
            return Ok(Cgroups::V1 {
                memory: v1.0,
                memsw: false,
                pids: v1.1,
                cpu: v1.2,
            });
        }
        let Some((root, mount)) = &mounts.v2 else {
            return Err("no cgroup file system is mounted".into());
        };
        let path = parent
            .or(own.v2.as_deref())
            .ok_or("this process is in no cgroup v2 group")?;
        Ok(Cgroups::V2 {
            parent: join_cgroup_path(mount, strip_root(path, root)),
            controllers: Vec::new(),
        })
    }

    /// Checks what the located groups can really do, enabling v2 controllers for the
    /// children on the way.
    fn prepare(self, swap_in_use: bool, inspect_only: bool) -> Result<Cgroups, String> {
        match self {
            Cgroups::V1 {
                memory, pids, cpu, ..
            } => {
                // The mount table said which controller each hierarchy has; a group
                // there is usable when we may make children in it. (The root group
                // lacks files such as pids.max that its children get.)
                let usable = |dir: Option<PathBuf>| {
                    dir.filter(|d| d.join("cgroup.procs").exists() && writable_dir(d))
                };
                let memory = usable(memory);
                let memsw = memory
                    .as_ref()
                    .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists())
                    || (memory.is_some() && !swap_in_use);
                let found = Cgroups::V1 {
                    memory,
                    memsw,
                    pids: usable(pids),
                    cpu: usable(cpu),
                };
                if found.missing().len() == Limit::ALL.len() {
                    return Err(
                        "no cgroup v1 controller (memory, pids, cpu) is writable here".into(),
                    );
                }
                Ok(found)
            }
            Cgroups::V2 { parent, .. } => {
                let controllers = if inspect_only {
                    if !writable_dir(&parent) {
                        return Err(format!("{} is not writable here", parent.display()));
                    }
                    v2_wanted(&parent)?.into_iter().map(|(_, l)| l).collect()
                } else {
                    enable_v2(&parent)?
                };
                Ok(Cgroups::V2 {
                    parent,
                    controllers,
                })
            }
        }
    }

    /// The limits this host cannot enforce, in [`Limit::ALL`] order.
    pub fn missing(&self) -> Vec<Limit> {
        let have = |limit: Limit| match self {
            Cgroups::V2 { controllers, .. } => match limit {
                // memory.swap.max lives in the memory controller.
                Limit::Swap => controllers.contains(&Limit::Memory),
                other => controllers.contains(&other),
            },
            Cgroups::V1 {
                memory,
                memsw,
                pids,
                cpu,
            } => match limit {
                Limit::Memory => memory.is_some(),
                Limit::Swap => memory.is_some() && *memsw,
                Limit::Pids => pids.is_some(),
                Limit::Cpu => cpu.is_some(),
            },
        };
        Limit::ALL.into_iter().filter(|l| !have(*l)).collect()
    }

    /// Which hierarchy, in words.
    pub fn describe(&self) -> String {
        match self {
            Cgroups::V2 { parent, .. } => format!("cgroup v2 under {}", parent.display()),
            Cgroups::V1 { memory, .. } => match memory {
                Some(dir) => format!("cgroup v1 (memory under {})", dir.display()),
                None => "cgroup v1".into(),
            },
        }
    }

    /// Makes the group of one job attempt, `name` unique on this host.
    pub fn create(&self, name: &str, limits: JobLimits) -> std::io::Result<JobCgroup> {
        let mut group = JobCgroup {
            dirs: Vec::new(),
            memory: None,
            v2: matches!(self, Cgroups::V2 { .. }),
        };
        // On any failure the directories made so far are removed by the drop.
        match self {
            Cgroups::V2 {
                parent,
                controllers,
            } => {
                let dir = parent.join(name);
                std::fs::create_dir(&dir)?;
                group.dirs.push(dir.clone());
                if controllers.contains(&Limit::Memory) {
                    write(&dir, "memory.max", &limits.memory_bytes.to_string())?;
                    write(&dir, "memory.swap.max", "0")?;
                    group.memory = Some(dir.clone());
                }
                if controllers.contains(&Limit::Pids) {
                    write(&dir, "pids.max", &limits.pids.to_string())?;
                }
                if controllers.contains(&Limit::Cpu) {
                    let quota = cpu_quota_us(limits.cpu_millicores);
                    write(&dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
                }
            }
            Cgroups::V1 {
                memory,
                memsw,
                pids,
                cpu,
            } => {
                if let Some(parent) = memory {
                    let dir = group.make(parent, name)?;
                    write(
                        &dir,
                        "memory.limit_in_bytes",
                        &limits.memory_bytes.to_string(),
                    )?;
                    if *memsw && dir.join("memory.memsw.limit_in_bytes").exists() {
                        // memsw counts memory plus swap: equal to the memory limit, no swap.
                        write(
                            &dir,
                            "memory.memsw.limit_in_bytes",
                            &limits.memory_bytes.to_string(),
                        )?;
                    }
                    if dir.join("memory.swappiness").exists() {
                        // Best effort: some kernels refuse it in a child group.
                        let _ = write(&dir, "memory.swappiness", "0");
                    }
                    group.memory = Some(dir);
                }
                if let Some(parent) = pids {
                    let dir = group.make(parent, name)?;
                    write(&dir, "pids.max", &limits.pids.to_string())?;
                }
                if let Some(parent) = cpu {
                    let dir = group.make(parent, name)?;
                    write(&dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    let quota = cpu_quota_us(limits.cpu_millicores);
                    write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
        }
        Ok(group)
    }
}

impl Cgroups {
    /// Removes the groups of jobs whose worker process is gone (killed outright, so it
    /// never cleaned up): a group is named `gridx-<worker pid>-...`. Returns how many.
    pub fn remove_stale(&self) -> usize {
        let parents: Vec<&PathBuf> = match self {
            Cgroups::V2 { parent, .. } => vec![parent],
            Cgroups::V1 {
                memory, pids, cpu, ..
            } => [memory, pids, cpu].into_iter().flatten().collect(),
        };
        let mut removed = 0;
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix("gridx-")
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                    continue;
                }
                // Only rmdir, which the kernel refuses for a group with processes: a
                // worker in another pid namespace (where its pid means nothing here)
                // may share the parent, and its jobs must not be killed.
                if std::fs::remove_dir(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// The quota of `millicores` thousandths of a core per [`CPU_PERIOD_US`]; at least the
/// kernel's minimum of 1 ms.
fn cpu_quota_us(millicores: u32) -> u64 {
    (u64::from(millicores) * CPU_PERIOD_US / 1000).max(1000)
}

/// The group of one job attempt. Dropping it kills what is left inside and removes it.
#[derive(Debug)]
pub struct JobCgroup {
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
    v2: bool,
}

impl JobCgroup {
    fn make(&mut self, parent: &Path, name: &str) -> std::io::Result<PathBuf> {
        let dir = parent.join(name);
        std::fs::create_dir(&dir)?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    /// The `cgroup.procs` files the job's first process writes "0" to before it execs,
    /// as C strings made before the fork (no allocation after it).
    pub fn procs_files(&self) -> Vec<CString> {
        use std::os::unix::ffi::OsStrExt;
        self.dirs
            .iter()
            .filter_map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// Whether the kernel OOM-killed a process of the job: `oom_kill` in v2's
    /// `memory.events` or v1's `memory.oom_control`.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = &self.memory else {
            return false;
        };
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(dir.join(file))
            .map(|text| counter(&text, "oom_kill") > 0)
            .unwrap_or(false)
    }

    /// SIGKILLs every process in the job's groups, until none is left (bounded: a
    /// process forking while it is killed is caught on a later round, and pids.max
    /// bounds how many there can be).
    pub fn kill_all(&self) {
        // The job joined every directory at once (one per v1 hierarchy, or the one v2
        // group), so each holds the same processes: the first is enough.
        if let Some(dir) = self.dirs.first() {
            if self.v2 && write(dir, "cgroup.kill", "1").is_ok() {
                return;
            }
            for _ in 0..100 {
                let pids = read_pids(dir);
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    // SAFETY: signalling a process of the job's own group.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in &self.dirs {
            // rmdir fails with EBUSY until the killed processes are reaped.
            for _ in 0..100 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        }
    }
}

fn read_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The value of `key` in a flat-keyed file (`key value` lines); 0 when absent.
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("writing {value} to {}: {e}", dir.join(file).display()),
        )
    })
}

fn writable_dir(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access reads a valid NUL-terminated path.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// A group's path as /proc/self/cgroup prints it, relative to what the mount shows:
/// `/docker/abc/x` under a mount of `/docker/abc` is `/x`.
fn strip_root<'a>(path: &'a str, root: &str) -> &'a str {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return path;
    }
    match path.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

/// `mount` + a cgroup path such as `/user.slice/x.scope` (absolute, as the kernel
/// prints it), never escaping the mount with `..`.
fn join_cgroup_path(mount: &Path, path: &str) -> PathBuf {
    let mut dir = mount.to_path_buf();
    for part in path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        dir.push(part);
    }
    dir
}

/// Enables memory, pids and cpu for the children of `parent` (v2), moving this process
/// into a `worker` leaf first when it lives in `parent` itself. Returns the
/// controllers the children get.
fn enable_v2(parent: &Path) -> Result<Vec<Limit>, String> {
    let wanted = v2_wanted(parent)?;
    let me = std::process::id();
    let is_root_group = !parent.join("cgroup.type").exists();
    let here = read_pids(parent);
    if !is_root_group && !here.is_empty() {
        // "No internal processes": every process of the parent (the worker, and
        // whatever started it in the same delegated group) moves into a `worker`
        // leaf, as systemd does for a delegated unit, or enabling controllers for the
        // job groups fails with EBUSY.
        let leaf = parent.join("worker");
        match std::fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create {}: {e}", leaf.display())),
        }
        for pid in here {
            // A process that exited meanwhile is fine; one we may not move is not,
            // and the subtree_control write below says so.
            if let Err(e) = write(&leaf, "cgroup.procs", &pid.to_string())
                && pid == me as i32
            {
                return Err(e.to_string());
            }
        }
    }
    let enable: Vec<String> = wanted.iter().map(|(name, _)| format!("+{name}")).collect();
    write(parent, "cgroup.subtree_control", &enable.join(" ")).map_err(|e| e.to_string())?;
    Ok(wanted.into_iter().map(|(_, limit)| limit).collect())
}

/// The controllers among memory, pids and cpu that `parent` can hand its children.
fn v2_wanted(parent: &Path) -> Result<Vec<(&'static str, Limit)>, String> {
    let available = std::fs::read_to_string(parent.join("cgroup.controllers"))
        .map_err(|e| format!("cannot read {}/cgroup.controllers: {e}", parent.display()))?;
    let wanted: Vec<(&str, Limit)> = [
        ("memory", Limit::Memory),
        ("pids", Limit::Pids),
        ("cpu", Limit::Cpu),
    ]
    .into_iter()
    .filter(|(name, _)| available.split_whitespace().any(|c| c == *name))
    .collect();
    if wanted.is_empty() {
        return Err(format!(
            "the cgroup {} delegates no memory, pids or cpu controller",
            parent.display()
        ));
    }
    Ok(wanted)
}

/// The cgroup file systems of /proc/self/mountinfo.
#[derive(Debug, Default)]
struct Mounts {
    /// The v2 hierarchy: the group mounted (mountinfo's root field) and where.
    v2: Option<(String, PathBuf)>,
    /// Each v1 hierarchy: its controllers, the group mounted, and where.
    v1: Vec<(Vec<String>, String, PathBuf)>,
}

impl Mounts {
    fn parse(mountinfo: &str) -> Mounts {
        let mut mounts = Mounts::default();
        for line in mountinfo.lines() {
            // "36 25 0:31 / /sys/fs/cgroup/memory rw,... - cgroup cgroup rw,memory"
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut fields = left.split(' ');
            // Field 3 is the group the mount shows (not "/" when a subtree is
            // bind-mounted, as container hosts do), field 4 where it is mounted.
            let root = fields
                .nth(3)
                .map(|r| unescape_mount_path(r).to_string_lossy().into_owned());
            let mount_point = fields.next().map(unescape_mount_path);
            let mut right = right.split(' ');
            let (Some(fs), Some(root), Some(mount_point)) = (right.next(), root, mount_point)
            else {
                continue;
            };
            match fs {
                "cgroup2" if mounts.v2.is_none() => mounts.v2 = Some((root, mount_point)),
                "cgroup" => {
                    let options = right.nth(1).unwrap_or_default();
                    let controllers = options
                        .split(',')
                        .filter(|o| ["memory", "pids", "cpu", "cpuacct"].contains(o))
                        .map(String::from)
                        .collect::<Vec<_>>();
                    if !controllers.is_empty() {
                        mounts.v1.push((controllers, root, mount_point));
                    }
                }
                _ => {}
            }
        }
        mounts
    }
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(raw: &str) -> PathBuf {
    PathBuf::from(
        raw.replace("\\040", " ")
            .replace("\\011", "\t")
            .replace("\\012", "\n")
            .replace("\\134", "\\"),
    )
}

/// This process's groups, from /proc/self/cgroup.
#[derive(Debug, Default)]
struct OwnGroups {
    v2: Option<String>,
    v1: Vec<(Vec<String>, String)>,
}

impl OwnGroups {
    fn parse(text: &str) -> OwnGroups {
        let mut own = OwnGroups::default();
        for line in text.lines() {
            // "4:memory:/a/b", "0::/user.slice/..."
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                own.v2 = Some(path.to_owned());
            } else {
                own.v1.push((
                    controllers.split(',').map(String::from).collect(),
                    path.to_owned(),
                ));
            }
        }
        own
    }

    fn v1_path(&self, controllers: &[String]) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|c| controllers.contains(c)))
            .map(|(_, path)| path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V1_SELF: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn v1_controllers_are_found_where_this_process_lives() {
        let mounts = Mounts::parse(V1_MOUNTINFO);
        let found = Cgroups::locate(&mounts, V1_SELF, None).expect("v1");
        assert_eq!(
            found,
            Cgroups::V1 {
                memory: Some("/sys/fs/cgroup/memory/process_api/abc".into()),
                memsw: false,
                pids: Some("/sys/fs/cgroup/pids".into()),
                cpu: Some("/sys/fs/cgroup/cpu".into()),
            }
        );
        let delegated = Cgroups::locate(&mounts, V1_SELF, Some("/gridx/../jobs")).expect("v1");
        let Cgroups::V1 { memory, .. } = delegated else {
            panic!("v1 expected");
        };
        assert_eq!(memory, Some("/sys/fs/cgroup/memory/gridx/jobs".into()));
    }

    #[test]
    fn v2_is_found_from_the_unified_line() {
        let mountinfo = "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope\n";
        let found = Cgroups::locate(&Mounts::parse(mountinfo), own, None).expect("v2");
        assert_eq!(
            found,
            Cgroups::V2 {
                parent: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-1.scope".into(),
                controllers: Vec::new(),
            }
        );
        assert!(Cgroups::locate(&Mounts::parse(""), own, None).is_err());
    }

    #[test]
    fn missing_limits_are_named() {
        let v2 = Cgroups::V2 {
            parent: "/x".into(),
            controllers: vec![Limit::Memory, Limit::Pids],
        };
        assert_eq!(v2.missing(), vec![Limit::Cpu]);
        let v1 = Cgroups::V1 {
            memory: Some("/m".into()),
            memsw: false,
            pids: None,
            cpu: Some("/c".into()),
        };
        assert_eq!(v1.missing(), vec![Limit::Swap, Limit::Pids]);
    }

    #[test]
    fn a_v2_job_group_gets_every_limit() {
        let root = tempfile::tempdir().expect("tempdir");
        let cgroups = Cgroups::V2 {
            parent: root.path().to_path_buf(),
            controllers: vec![Limit::Memory, Limit::Pids, Limit::Cpu],
        };
        let limits = JobLimits {
            memory_bytes: 64 << 20,
            pids: 32,
            cpu_millicores: 500,
        };
        let group = cgroups.create("job-1-1", limits).expect("create");
        let dir = root.path().join("job-1-1");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect(f);
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("pids.max"), "32");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(group.procs_files().len(), 1);
        std::fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .expect("events");
        assert!(group.oom_killed());
    }

    #[test]
    fn a_bind_mounted_subtree_is_not_joined_twice() {
        let mountinfo =
            "40 30 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let own = "4:memory:/docker/abc\n";
        let found = Cgroups::locate(&Mounts::parse(mountinfo), own, None).expect("v1");
        let Cgroups::V1 { memory, .. } = found else {
            panic!("v1 expected");
        };
        assert_eq!(memory, Some("/sys/fs/cgroup/memory".into()));
        assert_eq!(strip_root("/docker/abc/jobs", "/docker/abc"), "/jobs");
        assert_eq!(strip_root("/docker/abcd", "/docker/abc"), "/docker/abcd");
        assert_eq!(strip_root("/x", "/"), "/x");
    }

    #[test]
    fn counters_are_read_by_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(counter(text, "oom_kill"), 2);
        assert_eq!(counter(text, "missing"), 0);
        assert_eq!(cpu_quota_us(500), 50_000);
        assert_eq!(cpu_quota_us(1), 1000);
    }
}
