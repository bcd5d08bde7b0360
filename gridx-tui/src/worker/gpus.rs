//! The GPUs this host lends (`[worker] gpus`, docs/worker.md "GPUs"): found through
//! NVML at start, advertised in `hello`, and handed to a job's sandbox only as the
//! coordinator assigned them and only after the shared rule (`gridx_proto::gpu::
//! check_pick`) accepts the pick. A job that asks for none gets no device at all.

use gridx_proto::gpu::MAX_LENT_GPU_NAME_BYTES;
use gridx_proto::gpu::{self, BadPick, GpuDevice, GpuLending, GpuRequest, MAX_LENT_GPUS};
use std::path::{Path, PathBuf};

/// A GPU as NVML describes it, with what lending it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    pub memory_mb: u64,
    /// The minor number of its device node, `/dev/nvidia<minor>` (not always its
    /// index).
    pub minor: u32,
    /// `GPU-…`: what `CUDA_VISIBLE_DEVICES` and Docker's device requests name it by.
    pub uuid: Option<String>,
}

/// The driver's shared device nodes a CUDA program opens besides its GPUs' own:
/// the control device and unified memory. Bound when they exist.
const CONTROL_NODES: [&str; 3] = ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"];

/// What one job's sandbox gets: its GPUs' device nodes and the driver's shared
/// ones (host path, path in the sandbox), and the GPUs' UUIDs for
/// `CUDA_VISIBLE_DEVICES`. Empty for a job that asked for none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuGrant {
    pub indices: Vec<u32>,
    pub nodes: Vec<(PathBuf, PathBuf)>,
    pub uuids: Vec<String>,
}

impl GpuGrant {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// `CUDA_VISIBLE_DEVICES` for a job that has GPUs: by UUID when every one is
    /// known (CUDA's own order can differ from NVML's), else by NVML index, which
    /// CUDA reads in NVML's order under `CUDA_DEVICE_ORDER=PCI_BUS_ID` (set with it).
    /// `None` for a job without GPUs.
    pub fn cuda_visible_devices(&self) -> Option<String> {
        if self.indices.is_empty() {
            None
        } else if self.uuids.len() == self.indices.len() {
            Some(self.uuids.join(","))
        } else {
            let indices: Vec<String> = self.indices.iter().map(u32::to_string).collect();
            Some(indices.join(","))
        }
    }
}

/// The GPUs this host lends.
#[derive(Debug, Clone, Default)]
pub struct Loan {
    lent: Vec<GpuInfo>,
    dev: PathBuf,
}

impl Loan {
    /// Nothing lent.
    pub fn none() -> Self {
        Loan {
            lent: Vec::new(),
            dev: PathBuf::from("/dev"),
        }
    }

    /// The GPUs `lending` names among those NVML found (`inventory`, or why none
    /// were found). Lending GPUs that are not there is an error, not a silent
    /// nothing: the operator asked for them.
    pub fn choose(
        lending: &GpuLending,
        inventory: Result<Vec<GpuInfo>, String>,
    ) -> Result<Self, String> {
        if lending.is_none() {
            return Ok(Loan::none());
        }
        let found = inventory.map_err(|why| format!("--gpus {lending}: {why}"))?;
        if let GpuLending::Only(indices) = lending
            && let Some(missing) = indices
                .iter()
                .find(|i| !found.iter().any(|g| g.index == **i))
        {
            let have: Vec<String> = found.iter().map(|g| g.index.to_string()).collect();
            return Err(format!(
                "--gpus {lending}: there is no GPU {missing} (NVML finds {})",
                if have.is_empty() {
                    "none".to_owned()
                } else {
                    have.join(", ")
                }
            ));
        }
        let mut lent: Vec<GpuInfo> = found
            .into_iter()
            .filter(|g| lending.lends(g.index))
            .collect();
        if lent.is_empty() {
            return Err(format!("--gpus {lending}: NVML finds no GPU"));
        }
        if lent.len() > MAX_LENT_GPUS {
            tracing::warn!(
                found = lent.len(),
                "lending only the first {MAX_LENT_GPUS} GPUs (the protocol's limit)"
            );
            lent.truncate(MAX_LENT_GPUS);
        }
        for g in &mut lent {
            g.name = short_name(&g.name);
        }
        Ok(Loan {
            lent,
            dev: PathBuf::from("/dev"),
        })
    }

    /// Looks for device nodes under `dev` instead of `/dev` (tests).
    pub fn with_dev_dir(mut self, dev: &Path) -> Self {
        self.dev = dev.to_owned();
        self
    }

    pub fn is_empty(&self) -> bool {
        self.lent.is_empty()
    }

    /// What `hello` advertises.
    pub fn devices(&self) -> Vec<GpuDevice> {
        self.lent
            .iter()
            .map(|g| GpuDevice {
                index: g.index,
                name: g.name.clone(),
                memory_mb: g.memory_mb,
            })
            .collect()
    }

    /// The device nodes lending needs that are missing on this host (bubblewrap
    /// binds them; without them a job could not reach its GPU).
    pub fn missing_nodes(&self) -> Vec<PathBuf> {
        let mut needed: Vec<PathBuf> = self
            .lent
            .iter()
            .map(|g| self.dev.join(format!("nvidia{}", g.minor)))
            .collect();
        needed.push(self.dev.join("nvidiactl"));
        needed.into_iter().filter(|p| !p.exists()).collect()
    }

    /// Checks an assignment's pick against what is lent and what `in_use` holds,
    /// and makes the job's grant.
    pub fn grant(
        &self,
        request: GpuRequest,
        pick: &[u32],
        in_use: &[u32],
    ) -> Result<GpuGrant, BadPick> {
        if request.count == 0 && pick.is_empty() {
            // Every plain job: nothing to check, nothing to grant.
            return Ok(GpuGrant::default());
        }
        gpu::check_pick(&self.devices(), in_use, request, pick)?;
        let mut grant = GpuGrant {
            indices: pick.to_vec(),
            ..GpuGrant::default()
        };
        for index in pick {
            if let Some(g) = self.lent.iter().find(|g| g.index == *index) {
                let node = format!("nvidia{}", g.minor);
                grant
                    .nodes
                    .push((self.dev.join(&node), PathBuf::from("/dev").join(&node)));
                if let Some(uuid) = &g.uuid {
                    grant.uuids.push(uuid.clone());
                }
            }
        }
        for control in CONTROL_NODES {
            let name = control.trim_start_matches("/dev/");
            let host = self.dev.join(name);
            if host.exists() {
                grant.nodes.push((host, PathBuf::from(control)));
            }
        }
        Ok(grant)
    }
}

/// A name within the protocol's bound, cut at a character boundary.
fn short_name(name: &str) -> String {
    let mut end = name.len().min(MAX_LENT_GPU_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(index: u32, minor: u32, memory_mb: u64) -> GpuInfo {
        GpuInfo {
            index,
            name: format!("Fake {index}"),
            memory_mb,
            minor,
            uuid: Some(format!("GPU-{index}")),
        }
    }

    fn found() -> Result<Vec<GpuInfo>, String> {
        Ok(vec![info(0, 0, 16_000), info(1, 3, 80_000)])
    }

    #[test]
    fn lending_takes_what_is_asked_and_refuses_what_is_not_there() {
        assert!(
            Loan::choose(&GpuLending::None, Err("no NVML".into()))
                .unwrap()
                .is_empty()
        );
        let all = Loan::choose(&GpuLending::All, found()).unwrap();
        assert_eq!(all.devices().len(), 2);
        let one = Loan::choose(&GpuLending::Only(vec![1]), found()).unwrap();
        assert_eq!(one.devices()[0].index, 1);
        let missing = Loan::choose(&GpuLending::Only(vec![2]), found()).unwrap_err();
        assert!(
            missing.contains("no GPU 2") && missing.contains("0, 1"),
            "{missing}"
        );
        let none = Loan::choose(
            &GpuLending::All,
            Err("no GPU: the NVIDIA driver is not loaded".into()),
        )
        .unwrap_err();
        assert!(none.contains("driver is not loaded"), "{none}");
        assert!(Loan::choose(&GpuLending::All, Ok(vec![])).is_err());
        let long = Loan::choose(
            &GpuLending::All,
            Ok(vec![GpuInfo {
                name: "é".repeat(100),
                ..info(0, 0, 1)
            }]),
        )
        .unwrap();
        assert!(long.devices()[0].name.len() <= MAX_LENT_GPU_NAME_BYTES);
    }

    #[test]
    fn a_grant_binds_only_the_picked_gpus_nodes_and_the_shared_ones() {
        let dev = tempfile::tempdir().unwrap();
        for node in ["nvidia0", "nvidia3", "nvidiactl", "nvidia-uvm"] {
            std::fs::write(dev.path().join(node), "").unwrap();
        }
        let loan = Loan::choose(&GpuLending::All, found())
            .unwrap()
            .with_dev_dir(dev.path());
        assert!(loan.missing_nodes().is_empty());
        let ask = GpuRequest {
            count: 1,
            min_memory_mb: None,
        };
        let grant = loan.grant(ask, &[1], &[]).unwrap();
        assert_eq!(grant.indices, vec![1]);
        let inside: Vec<&Path> = grant.nodes.iter().map(|(_, s)| s.as_path()).collect();
        assert_eq!(
            inside,
            [
                Path::new("/dev/nvidia3"),
                Path::new("/dev/nvidiactl"),
                Path::new("/dev/nvidia-uvm")
            ]
        );
        assert_eq!(grant.nodes[0].0, dev.path().join("nvidia3"));
        assert_eq!(grant.cuda_visible_devices().as_deref(), Some("GPU-1"));
        // No request, no device; a pick the rule refuses, no grant.
        let nothing = loan.grant(GpuRequest::default(), &[], &[]).unwrap();
        assert!(nothing.is_empty() && nothing.nodes.is_empty());
        assert_eq!(loan.grant(ask, &[1], &[1]), Err(BadPick::InUse(1)));
        assert_eq!(loan.grant(ask, &[5], &[]), Err(BadPick::NotLent(5)));
        std::fs::remove_file(dev.path().join("nvidia0")).unwrap();
        assert_eq!(loan.missing_nodes(), vec![dev.path().join("nvidia0")]);
    }
}
