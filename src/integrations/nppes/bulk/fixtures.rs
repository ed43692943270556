//! Test fixtures: Data Dissemination CSV text built from the real headers, byte for byte as CMS
//! writes it (every value quoted, LF line ends).

use super::headers::{NPIDATA_COLUMNS_V2, PL_COLUMNS_V2};

/// One quoted CSV line of `columns`, with the named values set and every other column `""`.
pub fn record(columns: &[&str], values: &[(&str, &[u8])]) -> Vec<u8> {
    for (name, _) in values {
        assert!(columns.contains(name), "no column {name:?} in the fixture header");
    }
    let mut line = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        line.push(b'"');
        if let Some((_, value)) = values.iter().find(|(name, _)| name == column) {
            line.extend_from_slice(value);
        }
        line.push(b'"');
    }
    line.push(b'\n');
    line
}

pub fn header(columns: &[&str]) -> Vec<u8> {
    let mut line = Vec::new();
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    line.extend_from_slice(quoted.join(",").as_bytes());
    line.push(b'\n');
    line
}

/// An active individual's npidata row with the given extra values.
pub fn provider(npi: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut values: Vec<(&str, &[u8])> = vec![
        ("NPI", npi.as_bytes()),
        ("Entity Type Code", b"1"),
        ("Provider Last Name (Legal Name)", b"SMITH"),
        ("Provider First Name", b"ANNA"),
        ("Provider Enumeration Date", b"05/23/2005"),
        ("Last Update Date", b"07/08/2007"),
        ("Healthcare Provider Taxonomy Code_1", b"207Q00000X"),
        ("Healthcare Provider Primary Taxonomy Switch_1", b"Y"),
    ];
    for (name, value) in extra {
        values.retain(|(n, _)| n != name);
        values.push((name, value));
    }
    record(&NPIDATA_COLUMNS_V2, &values)
}

pub fn npidata(rows: &[Vec<u8>]) -> Vec<u8> {
    let mut file = header(&NPIDATA_COLUMNS_V2);
    for row in rows {
        file.extend_from_slice(row);
    }
    file
}

pub fn pl(rows: &[Vec<u8>]) -> Vec<u8> {
    let mut file = header(&PL_COLUMNS_V2);
    for row in rows {
        file.extend_from_slice(row);
    }
    file
}
