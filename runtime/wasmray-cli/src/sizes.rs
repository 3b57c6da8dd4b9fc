//! Byte sizes both ways (`512MiB` in, `512.0 MiB` out) and resource maps (`{"disk": 2}`).

/// Parses a byte count with an optional K/M/G/T suffix (powers of 1024; `B`, `iB` optional).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (try 512MiB or 2147483648)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}` (use K, M, G or T)"
            ));
        }
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as u64)
}

/// A byte count for people: `512 B`, `1.5 KiB`, `2.0 MiB`, `7.2 GiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The custom resources `--resources` names, in the order given.
///
/// A type of its own: clap reads a flag whose type is a `Vec` as a list of values, one per
/// occurrence, and would panic on a parser that returns the whole list at once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceList(pub(crate) Vec<(String, f64)>);

/// Parses `--resources`: a JSON object of names to non-negative numbers, as Ray takes it.
pub(crate) fn parse_resources(text: &str) -> Result<ResourceList, String> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("--resources must be a JSON object like '{{\"disk\": 2}}': {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "--resources must be a JSON object like '{\"disk\": 2}'".to_owned())?;
    object
        .iter()
        .map(|(name, quantity)| match quantity.as_f64() {
            Some(q) if q >= 0.0 => Ok((name.clone(), q)),
            _ => Err(format!(
                "resource `{name}` must be a number >= 0, not {quantity}"
            )),
        })
        .collect::<Result<_, _>>()
        .map(ResourceList)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5K"), Ok(1536));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }

    #[test]
    fn resources_are_a_json_object_of_numbers() {
        assert_eq!(
            parse_resources(r#"{"disk": 2, "tpu": 0.5}"#),
            Ok(ResourceList(vec![
                ("disk".into(), 2.0),
                ("tpu".into(), 0.5)
            ]))
        );
        assert!(parse_resources("[1]").is_err());
        assert!(parse_resources(r#"{"disk": -1}"#).is_err());
        assert!(parse_resources(r#"{"disk": "x"}"#).is_err());
    }
}
