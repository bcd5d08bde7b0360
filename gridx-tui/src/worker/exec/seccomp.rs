//! The seccomp filter of a bubblewrap job, compiled with seccompiler and handed to
//! `bwrap --seccomp FD` as raw BPF.
//!
//! It is modelled on Docker's default profile for a container without capabilities:
//! everything an ordinary program needs is allowed, and the system calls that widen
//! the kernel's attack surface or reach outside the sandbox fail with `EPERM` (the
//! job sees an ordinary error, so a denied call is the job's own failure, never a
//! sandbox error). What is denied, and why:
//! - new namespaces (`unshare`, `setns`, `clone` with a `CLONE_NEW*` flag): nested user
//!   namespaces hand a job every capability inside them and reach most of the kernel's
//!   namespace-only code; `clone3` answers `ENOSYS`, as under Docker, because its flags
//!   sit behind a pointer a filter cannot read, so libc falls back to `clone`;
//! - mounting and file system handles: `mount`, `umount2`, `pivot_root`, `chroot`, the
//!   new mount API (`fsopen`, `fsmount`, `open_tree`, `move_mount`, ...),
//!   `name_to_handle_at`, `open_by_handle_at` (the "shocker" escape);
//! - the kernel's keyring (`keyctl`, `add_key`, `request_key`), `bpf`,
//!   `perf_event_open`, `userfaultfd` (a staple of kernel exploits), `io_uring_*`;
//! - other processes' memory (`ptrace`, `process_vm_readv/writev`, `kcmp`,
//!   `pidfd_getfd`);
//! - the machine itself: module loading, `kexec_*`, `reboot`, `swapon/off`, clocks,
//!   `acct`, `quotactl(_fd)`, `syslog`, `iopl`/`ioperm`, NUMA placement, `personality`
//!   other than the values Docker allows, and `ioctl(TIOCSTI)`, which types into a
//!   terminal;
//! - `socket(AF_VSOCK)`: vsock ignores network namespaces, so on a virtual machine it
//!   would reach the hypervisor's host and its listeners despite `--unshare-net`;
//! - the mount listing calls (`statmount`, `listmount`).
//!
//! On x86-64 every x32-ABI call (numbers with bit 30 set) is refused too: a deny-list
//! keyed by number would otherwise be bypassed through the x32 aliases. And every call
//! newer than [`MAX_AUDITED`] answers `ENOSYS` ("this kernel has no such call", which
//! libc and runtimes handle by falling back): a deny-list must not let through what was
//! added to the kernel after it was written.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};
use std::collections::BTreeMap;

/// Why no filter could be made for this machine.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp filters are built for x86_64 and aarch64 only, not {0}")]
    Arch(&'static str),
    #[error("the seccomp filter could not be compiled: {0}")]
    Compile(String),
}

/// System calls that fail with `EPERM` whatever their arguments. (`create_module`,
/// `get_kernel_syms` and `query_module`, on Docker's list too, are gone from the kernel
/// since 2.6 and answer ENOSYS anyway.)
const DENIED: &[(&str, libc::c_long)] = &[
    ("acct", libc::SYS_acct),
    ("add_key", libc::SYS_add_key),
    ("bpf", libc::SYS_bpf),
    ("chroot", libc::SYS_chroot),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("clock_settime", libc::SYS_clock_settime),
    ("delete_module", libc::SYS_delete_module),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("finit_module", libc::SYS_finit_module),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fsopen", libc::SYS_fsopen),
    ("fspick", libc::SYS_fspick),
    ("get_mempolicy", libc::SYS_get_mempolicy),
    ("init_module", libc::SYS_init_module),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("kcmp", libc::SYS_kcmp),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("kexec_load", libc::SYS_kexec_load),
    ("keyctl", libc::SYS_keyctl),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("mbind", libc::SYS_mbind),
    ("mount", libc::SYS_mount),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("move_mount", libc::SYS_move_mount),
    ("move_pages", libc::SYS_move_pages),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("nfsservctl", libc::SYS_nfsservctl),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("open_tree", libc::SYS_open_tree),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("pivot_root", libc::SYS_pivot_root),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("process_madvise", libc::SYS_process_madvise),
    ("quotactl_fd", libc::SYS_quotactl_fd),
    ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
    // Numbers from 424 on are the same on every architecture; libc names neither yet.
    ("statmount", 457),
    ("listmount", 458),
    ("ptrace", libc::SYS_ptrace),
    ("quotactl", libc::SYS_quotactl),
    ("reboot", libc::SYS_reboot),
    ("request_key", libc::SYS_request_key),
    ("set_mempolicy", libc::SYS_set_mempolicy),
    ("setns", libc::SYS_setns),
    ("settimeofday", libc::SYS_settimeofday),
    ("swapoff", libc::SYS_swapoff),
    ("swapon", libc::SYS_swapon),
    ("syslog", libc::SYS_syslog),
    ("umount2", libc::SYS_umount2),
    ("unshare", libc::SYS_unshare),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("vhangup", libc::SYS_vhangup),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("sysfs", libc::SYS_sysfs),
    #[cfg(target_arch = "x86_64")]
    ("_sysctl", libc::SYS__sysctl),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
    #[cfg(target_arch = "x86_64")]
    ("ustat", libc::SYS_ustat),
];

/// The `CLONE_NEW*` flags: `clone` with any of them fails.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The newest system call this list was checked against: `removexattrat` (466, Linux
/// 6.13; numbers from 424 on are shared by every architecture). Anything above answers
/// ENOSYS until someone audits it and raises this.
const MAX_AUDITED: u32 = 466;

/// `AF_VSOCK`, which the libc crate does not name for glibc targets.
const AF_VSOCK: u64 = 40;

/// The `personality` values Docker's default profile allows: `PER_LINUX`,
/// `PER_LINUX32`, `UNAME26`, `PER_LINUX32|UNAME26`, and 0xffffffff (a query).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Names of what the filter denies (the test below keeps the list whole and unique).
#[cfg(test)]
fn denied_names() -> impl Iterator<Item = &'static str> {
    DENIED.iter().map(|(name, _)| *name).chain([
        "clone (new namespaces)",
        "clone3",
        "ioctl (TIOCSTI, TIOCLINUX)",
        "socket (AF_VSOCK)",
        "personality (other than Docker's five)",
    ])
}

fn target_arch() -> Result<TargetArch, SeccompError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        other => Err(SeccompError::Arch(other)),
    }
}

fn compile_error(e: impl std::fmt::Display) -> SeccompError {
    SeccompError::Compile(e.to_string())
}

/// One rule: argument `index` (a 64-bit value) masked with `mask` equals `mask`.
fn has_bits(index: u8, mask: u64) -> Result<SeccompRule, SeccompError> {
    let condition = SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(mask),
        mask,
    )
    .map_err(compile_error)?;
    SeccompRule::new(vec![condition]).map_err(compile_error)
}

/// One rule: argument `index` (32 bits) equals `value`.
fn equals(index: u8, value: u64) -> Result<SeccompRule, SeccompError> {
    let condition = SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .map_err(compile_error)?;
    SeccompRule::new(vec![condition]).map_err(compile_error)
}

/// The filter as seccompiler's BPF program.
pub fn job_program() -> Result<BpfProgram, SeccompError> {
    let arch = target_arch()?;
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .map(|(_, number)| (*number, Vec::new()))
        .collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| has_bits(0, *flag as u64))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    rules.insert(libc::SYS_socket, vec![equals(0, AF_VSOCK)?]);
    // One rule whose conditions all hold (AND): a value that is none of the allowed.
    let other_personality = PERSONALITIES
        .iter()
        .map(|value| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *value)
                .map_err(compile_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(other_personality).map_err(compile_error)?],
    );
    rules.insert(
        libc::SYS_ioctl,
        vec![equals(1, libc::TIOCSTI)?, equals(1, libc::TIOCLINUX)?],
    );
    let denied =
        SeccompFilter::new(rules, SeccompAction::Allow, eperm, arch).map_err(compile_error)?;
    let mut program: BpfProgram = denied.try_into().map_err(compile_error)?;
    // clone3 answers ENOSYS (not EPERM): that is what makes glibc fall back to clone,
    // whose flags the rules above can read.
    let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
    splice_after_arch_check(
        &mut program,
        &[
            load_syscall_number(),
            jump_if_equal(libc::SYS_clone3 as u32, 0, 1),
            ret(enosys.clone()),
        ],
    );
    // Calls newer than the audit answer ENOSYS, before any rule is looked at.
    splice_after_arch_check(
        &mut program,
        &[
            load_syscall_number(),
            sock_filter {
                code: BPF_JMP_JGT_K,
                jt: 0,
                jf: 1,
                k: MAX_AUDITED,
            },
            ret(enosys),
        ],
    );
    if arch == TargetArch::x86_64 {
        splice_after_arch_check(&mut program, &x32_refusal());
    }
    Ok(program)
}

/// The program as the bytes `bwrap --seccomp` reads: the `sock_filter` array.
pub fn job_filter_bytes() -> Result<Vec<u8>, SeccompError> {
    let program = job_program()?;
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for instruction in &program {
        bytes.extend_from_slice(&instruction.code.to_ne_bytes());
        bytes.push(instruction.jt);
        bytes.push(instruction.jf);
        bytes.extend_from_slice(&instruction.k.to_ne_bytes());
    }
    Ok(bytes)
}

// Hand-written BPF, kept to the few instructions seccompiler cannot express: a test on
// the syscall number's range, and an answer other than the filter's one match action.
// Constants from <linux/bpf_common.h> and <linux/seccomp.h>.
/// BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
const BPF_RET_K: u16 = 0x06;
/// Offset of `nr` in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
/// seccompiler starts with three instructions that check the architecture.
const ARCH_CHECK_LEN: usize = 3;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn load_syscall_number() -> sock_filter {
    sock_filter {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: NR_OFFSET,
    }
}

fn jump_if_equal(k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: BPF_JMP_JEQ_K,
        jt,
        jf,
        k,
    }
}

fn ret(action: SeccompAction) -> sock_filter {
    sock_filter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: action.into(),
    }
}

/// `nr >= 0x40000000` (an x32 call) fails with EPERM.
fn x32_refusal() -> [sock_filter; 3] {
    [
        load_syscall_number(),
        sock_filter {
            code: BPF_JMP_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        ret(SeccompAction::Errno(libc::EPERM as u32)),
    ]
}

/// Inserts `instructions` right after the architecture check. Every jump in BPF is
/// forward and relative, and none of seccompiler's crosses this point (the check's own
/// jump skips one instruction, its kill), so nothing needs relocating; the rules after
/// it load the syscall number again themselves.
fn splice_after_arch_check(program: &mut BpfProgram, instructions: &[sock_filter]) {
    let at = ARCH_CHECK_LEN.min(program.len());
    program.splice(at..at, instructions.iter().cloned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_to_whole_instructions() {
        let program = job_program().expect("filter");
        let bytes = job_filter_bytes().expect("bytes");
        assert_eq!(bytes.len(), program.len() * 8);
        // Far below the kernel's 4096-instruction limit.
        assert!(program.len() < 1024, "{} instructions", program.len());
        // It goes through a pipe whole, before the job starts (process::filled_pipe).
        assert!(bytes.len() <= 4096, "{} bytes", bytes.len());
        // The architecture check is still first: load arch, compare, kill.
        assert_eq!(program[0].k, 4, "loads seccomp_data.arch first");
        assert_eq!(program[2].code, BPF_RET_K);
        assert_eq!(
            program[2].k,
            u32::from(SeccompAction::KillProcess),
            "a foreign architecture is killed"
        );
    }

    #[test]
    fn the_spliced_checks_follow_the_arch_check() {
        let program = job_program().expect("filter");
        // clone3 is answered first ...
        let clone3 = program
            .iter()
            .position(|i| i.code == BPF_JMP_JEQ_K && i.k == libc::SYS_clone3 as u32)
            .expect("a clone3 test");
        assert_eq!(
            program[clone3 + 1].k,
            u32::from(SeccompAction::Errno(libc::ENOSYS as u32))
        );
        if cfg!(target_arch = "x86_64") {
            // ... after x32, which comes right after the arch check ...
            assert_eq!(program[ARCH_CHECK_LEN..ARCH_CHECK_LEN + 3], x32_refusal());
            assert!(clone3 > ARCH_CHECK_LEN + 3);
        }
        // ... and the unaudited calls, which come before clone3.
        let newest = program
            .iter()
            .position(|i| i.code == BPF_JMP_JGT_K && i.k == MAX_AUDITED)
            .expect("a test of the newest audited call");
        assert!(newest < clone3);
        assert_eq!(
            program[newest + 1].k,
            u32::from(SeccompAction::Errno(libc::ENOSYS as u32))
        );
    }

    #[test]
    fn every_denied_call_is_named_once() {
        let mut names: Vec<&str> = denied_names().collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        for needed in [
            "unshare",
            "setns",
            "mount",
            "keyctl",
            "bpf",
            "ptrace",
            "userfaultfd",
        ] {
            assert!(names.contains(&needed), "{needed} is not denied");
        }
    }
}
