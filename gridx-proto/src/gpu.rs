//! GPUs lent to jobs (docs/jobs.md, "GPU jobs"): what a worker lends, what a job
//! asks for, and the one matching rule both sides apply. The coordinator picks the
//! devices a job gets (`choose`) and names them in `assign`; the worker checks the
//! pick against the same rule (`check_pick`) before it hands a sandbox any device.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;
use utoipa::ToSchema;

/// Most GPUs one worker may lend, and one job may get. A DGX has 8 or 16; the bound
/// keeps a `hello` at every other bound within its size limit.
pub const MAX_LENT_GPUS: usize = 16;
/// Longest name of a lent GPU, in bytes (NVML's names are under 64).
pub const MAX_LENT_GPU_NAME_BYTES: usize = 96;

/// A GPU a worker lends to jobs, as NVML describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct GpuDevice {
    /// NVML's index on the worker's host, which `assign` names.
    pub index: u32,
    /// The model, e.g. `NVIDIA H200`.
    pub name: String,
    /// Its total memory, in MB.
    pub memory_mb: u64,
}

/// What a job asks for: `count` GPUs of at least `min_memory_mb` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuRequest {
    pub count: u32,
    pub min_memory_mb: Option<u32>,
}

impl GpuRequest {
    fn fits(&self, device: &GpuDevice) -> bool {
        self.min_memory_mb
            .is_none_or(|min| device.memory_mb >= u64::from(min))
    }

    /// How many of `devices` could serve this request if all were free.
    pub fn matching(&self, devices: &[GpuDevice]) -> usize {
        devices.iter().filter(|d| self.fits(d)).count()
    }
}

impl fmt::Display for GpuRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.count == 1 { "" } else { "s" };
        write!(f, "{} GPU{plural}", self.count)?;
        if let Some(min) = self.min_memory_mb {
            write!(f, " with at least {min} MB each")?;
        }
        Ok(())
    }
}

/// The devices to give a job that asks for `request`, from `devices` less those in
/// `in_use`: the smallest that fit (so a big GPU stays free for a job that needs
/// it), lowest index first among equals. `None` when not enough are free; an empty
/// pick for a job that asks for none.
pub fn choose(devices: &[GpuDevice], in_use: &[u32], request: GpuRequest) -> Option<Vec<u32>> {
    if request.count == 0 {
        return Some(Vec::new());
    }
    let mut free: Vec<&GpuDevice> = devices
        .iter()
        .filter(|d| !in_use.contains(&d.index) && request.fits(d))
        .collect();
    if free.len() < request.count as usize {
        return None;
    }
    free.sort_by_key(|d| (d.memory_mb, d.index));
    let mut pick: Vec<u32> = free
        .into_iter()
        .take(request.count as usize)
        .map(|d| d.index)
        .collect();
    pick.sort_unstable();
    Some(pick)
}

/// Why a worker will not run a job on the GPUs `assign` named. Its text is the
/// `reason` of a `refused`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BadPick {
    #[error("the job asks for {asked} GPUs and the assignment names {named}")]
    Count { asked: u32, named: usize },
    #[error("the assignment names GPU {0}, which this worker does not lend")]
    NotLent(u32),
    #[error("the assignment names GPU {0} twice")]
    Twice(u32),
    #[error("GPU {0} is in use by another job on this worker")]
    InUse(u32),
    #[error("GPU {index} has {memory_mb} MB, less than the {min} MB the job asks for")]
    TooSmall {
        index: u32,
        memory_mb: u64,
        min: u32,
    },
}

/// Whether `pick` is a valid choice for `request` from `devices` with `in_use` busy:
/// what the worker checks of each `assign`.
pub fn check_pick(
    devices: &[GpuDevice],
    in_use: &[u32],
    request: GpuRequest,
    pick: &[u32],
) -> Result<(), BadPick> {
    if pick.len() != request.count as usize {
        return Err(BadPick::Count {
            asked: request.count,
            named: pick.len(),
        });
    }
    for (i, index) in pick.iter().enumerate() {
        if pick[..i].contains(index) {
            return Err(BadPick::Twice(*index));
        }
        let Some(device) = devices.iter().find(|d| d.index == *index) else {
            return Err(BadPick::NotLent(*index));
        };
        if in_use.contains(index) {
            return Err(BadPick::InUse(*index));
        }
        if !request.fits(device) {
            return Err(BadPick::TooSmall {
                index: *index,
                memory_mb: device.memory_mb,
                min: request.min_memory_mb.unwrap_or(0),
            });
        }
    }
    Ok(())
}

/// Which of its GPUs a worker host lends (`[worker] gpus`, `--gpus`): none (the
/// default: a GPU driver is a large kernel surface to hand a stranger), all NVML
/// finds, or the listed indices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum GpuLending {
    #[default]
    None,
    All,
    Only(Vec<u32>),
}

impl GpuLending {
    /// Whether the GPU with NVML index `index` is lent.
    pub fn lends(&self, index: u32) -> bool {
        match self {
            GpuLending::None => false,
            GpuLending::All => true,
            GpuLending::Only(list) => list.contains(&index),
        }
    }

    pub fn is_none(&self) -> bool {
        *self == GpuLending::None
    }
}

impl FromStr for GpuLending {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "none" => Ok(GpuLending::None),
            "all" => Ok(GpuLending::All),
            list => {
                let mut indices = Vec::new();
                for part in list.split(',') {
                    let index: u32 = part.trim().parse().map_err(|_| {
                        format!(
                            "{s:?} is not `none`, `all` or a comma-separated list of GPU indices such as `0,2`"
                        )
                    })?;
                    if !indices.contains(&index) {
                        indices.push(index);
                    }
                }
                if indices.len() > MAX_LENT_GPUS {
                    return Err(format!("at most {MAX_LENT_GPUS} GPUs may be lent"));
                }
                Ok(GpuLending::Only(indices))
            }
        }
    }
}

impl TryFrom<String> for GpuLending {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<GpuLending> for String {
    fn from(l: GpuLending) -> String {
        l.to_string()
    }
}

impl fmt::Display for GpuLending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuLending::None => f.write_str("none"),
            GpuLending::All => f.write_str("all"),
            GpuLending::Only(list) => {
                let parts: Vec<String> = list.iter().map(u32::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, memory_mb: u64) -> GpuDevice {
        GpuDevice {
            index,
            name: format!("GPU {index}"),
            memory_mb,
        }
    }

    fn ask(count: u32, min: Option<u32>) -> GpuRequest {
        GpuRequest {
            count,
            min_memory_mb: min,
        }
    }

    #[test]
    fn choose_takes_the_smallest_free_devices_that_fit() {
        let devices = [
            gpu(0, 80_000),
            gpu(1, 16_000),
            gpu(2, 16_000),
            gpu(3, 40_000),
        ];
        assert_eq!(choose(&devices, &[], ask(0, None)), Some(vec![]));
        assert_eq!(choose(&devices, &[], ask(1, None)), Some(vec![1]));
        assert_eq!(choose(&devices, &[1], ask(2, None)), Some(vec![2, 3]));
        assert_eq!(choose(&devices, &[], ask(1, Some(20_000))), Some(vec![3]));
        assert_eq!(choose(&devices, &[3], ask(1, Some(20_000))), Some(vec![0]));
        assert_eq!(choose(&devices, &[0, 3], ask(1, Some(20_000))), None);
        assert_eq!(choose(&devices, &[], ask(5, None)), None);
        assert_eq!(choose(&[], &[], ask(1, None)), None);
    }

    #[test]
    fn a_pick_is_checked_as_it_was_chosen() {
        let devices = [gpu(0, 80_000), gpu(1, 16_000)];
        assert_eq!(check_pick(&devices, &[], ask(1, None), &[1]), Ok(()));
        assert_eq!(check_pick(&devices, &[], ask(0, None), &[]), Ok(()));
        assert_eq!(
            check_pick(&devices, &[], ask(1, None), &[]),
            Err(BadPick::Count { asked: 1, named: 0 })
        );
        assert_eq!(
            check_pick(&devices, &[], ask(0, None), &[0]),
            Err(BadPick::Count { asked: 0, named: 1 })
        );
        assert_eq!(
            check_pick(&devices, &[], ask(1, None), &[7]),
            Err(BadPick::NotLent(7))
        );
        assert_eq!(
            check_pick(&devices, &[], ask(2, None), &[0, 0]),
            Err(BadPick::Twice(0))
        );
        assert_eq!(
            check_pick(&devices, &[0], ask(1, None), &[0]),
            Err(BadPick::InUse(0))
        );
        assert_eq!(
            check_pick(&devices, &[], ask(1, Some(20_000)), &[1]),
            Err(BadPick::TooSmall {
                index: 1,
                memory_mb: 16_000,
                min: 20_000
            })
        );
    }

    #[test]
    fn lending_parses_none_all_and_lists() {
        assert_eq!("none".parse(), Ok(GpuLending::None));
        assert_eq!("".parse(), Ok(GpuLending::None));
        assert_eq!("all".parse(), Ok(GpuLending::All));
        assert_eq!(" 0, 2,2 ".parse(), Ok(GpuLending::Only(vec![0, 2])));
        assert!("0,x".parse::<GpuLending>().is_err());
        assert!("-1".parse::<GpuLending>().is_err());
        let many: Vec<String> = (0..17).map(|i| i.to_string()).collect();
        assert!(many.join(",").parse::<GpuLending>().is_err());
        assert!(GpuLending::Only(vec![0, 2]).lends(2));
        assert!(!GpuLending::Only(vec![0, 2]).lends(1));
        assert!(!GpuLending::None.lends(0));
        assert_eq!(GpuLending::Only(vec![0, 2]).to_string(), "0,2");
    }

    #[test]
    fn requests_describe_themselves() {
        assert_eq!(ask(1, None).to_string(), "1 GPU");
        assert_eq!(
            ask(2, Some(16_000)).to_string(),
            "2 GPUs with at least 16000 MB each"
        );
    }
}
