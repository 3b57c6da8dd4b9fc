//! Logical resources: quantities of named things (CPU, GPU, custom) a task asks for and a node
//! offers.
//!
//! Quantities are fixed point with four decimal places, as in Ray, so that `0.1 + 0.2` CPUs add
//! up exactly and availability never drifts. Resources are bookkeeping only: nothing here pins
//! threads or measures real usage.

use std::collections::BTreeMap;
use std::fmt;

/// The name of the CPU resource.
pub const CPU: &str = "CPU";
/// The name of the GPU resource.
pub const GPU: &str = "GPU";

const SCALE: f64 = 10_000.0;

/// A bad resource quantity or name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "resource `{name}` has an invalid quantity {quantity}: it must be a finite number >= 0"
    )]
    InvalidQuantity { name: String, quantity: f64 },
    #[error("resource name must not be empty")]
    EmptyName,
    #[error("num_gpus above 1 must be a whole number of GPUs (as in Ray), not {0}")]
    FractionalGpus(f64),
}

/// A multiset of named quantities. Zero quantities are not stored.
#[derive(
    Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ResourceSet {
    units: BTreeMap<String, u64>,
}

impl ResourceSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from `(name, quantity)` pairs; repeated names add up.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Result<Self, ResourceError> {
        let mut set = Self::new();
        for (name, quantity) in pairs {
            set.insert(name, quantity)?;
        }
        Ok(set)
    }

    /// Adds `quantity` of `name`.
    pub fn insert(&mut self, name: &str, quantity: f64) -> Result<(), ResourceError> {
        if name.is_empty() {
            return Err(ResourceError::EmptyName);
        }
        if !quantity.is_finite() || quantity < 0.0 || quantity * SCALE > u64::MAX as f64 {
            return Err(ResourceError::InvalidQuantity {
                name: name.to_owned(),
                quantity,
            });
        }
        let units = (quantity * SCALE).round() as u64;
        if units > 0 {
            let have = self.units.entry(name.to_owned()).or_default();
            // A repeated name adds up; a sum past what a quantity can hold is as invalid as
            // one quantity that large (it must never wrap to a small number).
            let Some(sum) = have.checked_add(units) else {
                return Err(ResourceError::InvalidQuantity {
                    name: name.to_owned(),
                    quantity: (*have as f64 + units as f64) / SCALE,
                });
            };
            *have = sum;
        }
        Ok(())
    }

    /// The quantity of `name`, 0 when absent.
    /// Sets `name` to `quantity` (removing it at zero).
    pub fn set(&mut self, name: &str, quantity: f64) -> Result<(), ResourceError> {
        self.units.remove(name);
        self.insert(name, quantity)
    }

    pub fn get(&self, name: &str) -> f64 {
        self.units.get(name).map_or(0.0, |&u| u as f64 / SCALE)
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Whether every quantity in `self` is available in `available`.
    pub fn fits_in(&self, available: &ResourceSet) -> bool {
        self.units
            .iter()
            .all(|(name, &need)| available.units.get(name).is_some_and(|&have| have >= need))
    }

    /// Whether every quantity in `self` fits in `times` times `capacity`.
    pub fn fits_in_times(&self, capacity: &ResourceSet, times: u32) -> bool {
        self.units.iter().all(|(name, &need)| {
            capacity
                .units
                .get(name)
                .is_some_and(|&have| have.saturating_mul(u64::from(times)) >= need)
        })
    }

    /// The names in `self` that `capacity` lacks or has too little of.
    pub fn shortfall(&self, capacity: &ResourceSet) -> Vec<String> {
        self.units
            .iter()
            .filter(|(name, need)| capacity.units.get(*name).is_none_or(|have| have < need))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Takes `other` out of `self`, saturating at zero (callers check `fits_in` first; a
    /// re-acquire after a blocked `get` may briefly oversubscribe, as in Ray).
    pub fn subtract(&mut self, other: &ResourceSet) {
        for (name, &units) in &other.units {
            if let Some(have) = self.units.get_mut(name) {
                *have = have.saturating_sub(units);
            }
        }
    }

    /// Puts `other` back into `self`, never above `cap`.
    pub fn add_capped(&mut self, other: &ResourceSet, cap: &ResourceSet) {
        for (name, &units) in &other.units {
            let limit = cap.units.get(name).copied().unwrap_or(0);
            match self.units.get_mut(name) {
                Some(have) => *have = have.saturating_add(units).min(limit),
                None => {
                    self.units.insert(name.clone(), units.min(limit));
                }
            }
        }
    }

    /// Adds `other` to `self` (saturating: totals of a cluster, never a ledger).
    pub fn add(&mut self, other: &ResourceSet) {
        for (name, &units) in &other.units {
            match self.units.get_mut(name) {
                Some(have) => *have = have.saturating_add(units),
                None => {
                    self.units.insert(name.clone(), units);
                }
            }
        }
    }

    /// `(name, quantity)` pairs in name order.
    pub fn to_pairs(&self) -> Vec<(String, f64)> {
        self.units
            .iter()
            .map(|(name, &u)| (name.clone(), u as f64 / SCALE))
            .collect()
    }
}

impl fmt::Debug for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, quantity)) in self.to_pairs().into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: {quantity}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_name_whose_sum_overflows_is_refused_not_wrapped() {
        let huge = 2f64.powi(63) / SCALE;
        let error = ResourceSet::from_pairs([(CPU, huge), (CPU, huge)]).unwrap_err();
        assert!(
            matches!(error, ResourceError::InvalidQuantity { ref name, .. } if name == CPU),
            "{error}"
        );
        // Below the limit, repeats still add up.
        let two = ResourceSet::from_pairs([(CPU, 1.5), (CPU, 0.5)]).unwrap();
        assert_eq!(two.get(CPU), 2.0);
    }

    #[test]
    fn fractions_add_up_exactly() {
        let cap = ResourceSet::from_pairs([(CPU, 1.0)]).unwrap();
        let mut avail = cap.clone();
        let tenth = ResourceSet::from_pairs([(CPU, 0.1)]).unwrap();
        for _ in 0..10 {
            assert!(tenth.fits_in(&avail));
            avail.subtract(&tenth);
        }
        assert!(!tenth.fits_in(&avail));
        for _ in 0..10 {
            avail.add_capped(&tenth, &cap);
        }
        assert_eq!(avail, cap);
    }

    #[test]
    fn shortfall_names_missing_and_short_resources() {
        let cap = ResourceSet::from_pairs([(CPU, 2.0)]).unwrap();
        let ask = ResourceSet::from_pairs([(CPU, 4.0), ("unobtainium", 1.0), (GPU, 0.0)]).unwrap();
        assert_eq!(
            ask.shortfall(&cap),
            vec!["CPU".to_owned(), "unobtainium".to_owned()]
        );
    }

    #[test]
    fn bad_quantities_are_refused() {
        assert!(ResourceSet::from_pairs([(CPU, -1.0)]).is_err());
        assert!(ResourceSet::from_pairs([(CPU, f64::NAN)]).is_err());
        assert!(ResourceSet::from_pairs([("", 1.0)]).is_err());
    }
}
