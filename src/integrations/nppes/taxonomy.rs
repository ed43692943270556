//! The NUCC Health Care Provider Taxonomy code set, read from NUCC's CSV edition
//! (`profiles/nucc/nucc_taxonomy_251.csv`): code lookups, display names, and text → codes for
//! the taxonomy descriptions NPPES sends ("Nurse Practitioner, Family") or a person types.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The FHIR code system of NUCC provider taxonomy codes.
pub const NUCC_SYSTEM: &str = "http://nucc.org/provider-taxonomy";

#[derive(Debug, thiserror::Error)]
pub enum NuccError {
    #[error("cannot read the NUCC taxonomy file {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the NUCC taxonomy CSV is malformed: {0}")]
    Csv(#[from] csv::Error),
    #[error("the NUCC taxonomy CSV has no {0:?} column")]
    MissingColumn(&'static str),
    #[error("cannot tell the code set version from the file name {0:?} (expected like nucc_taxonomy_251.csv)")]
    Version(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NuccTaxonomy {
    pub code: String,
    pub grouping: String,
    pub classification: String,
    pub specialization: Option<String>,
    pub definition: Option<String>,
    pub display_name: Option<String>,
    /// "Individual" or "Non-Individual".
    pub section: String,
}

impl NuccTaxonomy {
    /// The Display Name, or "Classification, Specialization" for rows without one.
    pub fn display(&self) -> String {
        match (&self.display_name, &self.specialization) {
            (Some(name), _) => name.clone(),
            (None, Some(specialization)) => format!("{}, {specialization}", self.classification),
            (None, None) => self.classification.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NuccCodeSet {
    version: String,
    taxonomies: Vec<NuccTaxonomy>,
    by_code: HashMap<String, usize>,
}

impl NuccCodeSet {
    /// Loads NUCC's CSV; the version comes from the file name as NUCC publishes it
    /// (`nucc_taxonomy_251.csv` is 25.1), since the file itself does not say.
    pub fn load(path: &Path) -> Result<NuccCodeSet, NuccError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let version = version_from_file_name(name).ok_or_else(|| NuccError::Version(name.to_string()))?;
        let file = std::fs::File::open(path).map_err(|source| NuccError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        NuccCodeSet::from_reader(file, &version)
    }

    pub fn from_reader(reader: impl Read, version: &str) -> Result<NuccCodeSet, NuccError> {
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let headers = csv.headers()?.clone();
        let column = |name: &'static str| {
            headers
                .iter()
                .position(|h| h.trim().trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
                .ok_or(NuccError::MissingColumn(name))
        };
        let code = column("Code")?;
        let grouping = column("Grouping")?;
        let classification = column("Classification")?;
        let specialization = column("Specialization")?;
        let definition = column("Definition")?;
        let display_name = column("Display Name")?;
        let section = column("Section")?;

        let mut taxonomies = Vec::new();
        let mut by_code = HashMap::new();
        for row in csv.records() {
            let row = row?;
            let field = |i: usize| row.get(i).map(str::trim).unwrap_or_default().to_string();
            let optional = |i: usize| Some(field(i)).filter(|s| !s.is_empty());
            let taxonomy = NuccTaxonomy {
                code: field(code),
                grouping: field(grouping),
                classification: field(classification),
                specialization: optional(specialization),
                definition: optional(definition),
                display_name: optional(display_name),
                section: field(section),
            };
            if taxonomy.code.is_empty() {
                continue;
            }
            by_code.insert(taxonomy.code.clone(), taxonomies.len());
            taxonomies.push(taxonomy);
        }
        Ok(NuccCodeSet {
            version: version.to_string(),
            taxonomies,
            by_code,
        })
    }

    /// The code set version, e.g. "25.1".
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn len(&self) -> usize {
        self.taxonomies.len()
    }

    /// Every code, in the file's order.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.taxonomies.iter().map(|t| t.code.as_str())
    }

    pub fn all(&self) -> &[NuccTaxonomy] {
        &self.taxonomies
    }

    pub fn is_empty(&self) -> bool {
        self.taxonomies.is_empty()
    }

    pub fn lookup(&self, code: &str) -> Option<&NuccTaxonomy> {
        self.by_code.get(code.trim()).map(|&i| &self.taxonomies[i])
    }

    pub fn display(&self, code: &str) -> Option<String> {
        self.lookup(code).map(NuccTaxonomy::display)
    }

    /// Taxonomies matching free text, best first: the exact display name, then the exact
    /// "Classification[,] Specialization" (how NPPES's `desc` reads), then every taxonomy whose
    /// display name, classification and specialization hold each word of the query (as a word
    /// or a word's beginning), those matching within the display name first.
    pub fn find(&self, text: &str) -> Vec<&NuccTaxonomy> {
        let query = words(text);
        if query.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<(u8, usize, &NuccTaxonomy)> = Vec::new();
        for taxonomy in &self.taxonomies {
            let display = taxonomy.display_name.as_deref().map(words).unwrap_or_default();
            let mut desc = words(&taxonomy.classification);
            desc.extend(taxonomy.specialization.as_deref().map(words).unwrap_or_default());
            let rank = if display == query {
                0
            } else if desc == query {
                1
            } else if query.iter().all(|q| display.iter().any(|w| w.starts_with(q.as_str()))) {
                2
            } else if query
                .iter()
                .all(|q| display.iter().chain(&desc).any(|w| w.starts_with(q.as_str())))
            {
                3
            } else {
                continue;
            };
            hits.push((rank, display.len().max(desc.len()), taxonomy));
        }
        // Fewer extra words means a closer match; the code keeps the order stable.
        hits.sort_by(|a, b| (a.0, a.1, &a.2.code).cmp(&(b.0, b.1, &b.2.code)));
        hits.into_iter().map(|(_, _, t)| t).collect()
    }
}

/// Lower-case alphanumeric words; punctuation such as "&", "," and "/" separates words.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// "nucc_taxonomy_251.csv" → "25.1": NUCC numbers its files by year and release.
fn version_from_file_name(name: &str) -> Option<String> {
    let stem = name.strip_suffix(".csv").unwrap_or(name);
    let digits = stem.rsplit('_').next()?;
    if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, release) = digits.split_at(digits.len() - 1);
    Some(format!("{year}.{release}"))
}

/// The value set Plan-Net binds `PractitionerRole.specialty` to (required). It lists an older
/// NUCC release than the vendored code set.
pub const PLAN_NET_SPECIALTY_VALUE_SET: &str =
    "http://hl7.org/fhir/us/davinci-pdex-plan-net/ValueSet/IndividualAndGroupSpecialtiesVS";

/// The codes of `codes` that Plan-Net accepts as specialties, by the value set the validator
/// checks against.
pub fn plan_net_specialties(
    codes: &NuccCodeSet,
    terminology: &crate::validation::terminology::Terminology,
) -> HashSet<String> {
    use crate::validation::terminology::Membership;
    codes
        .codes()
        .filter(|code| {
            terminology.contains(PLAN_NET_SPECIALTY_VALUE_SET, Some(NUCC_SYSTEM), code) == Membership::Member
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn codes() -> &'static NuccCodeSet {
        static CODES: OnceLock<NuccCodeSet> = OnceLock::new();
        CODES.get_or_init(|| {
            NuccCodeSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/nucc/nucc_taxonomy_251.csv"))
                .unwrap()
        })
    }

    fn first(text: &str) -> Option<&'static str> {
        codes().find(text).first().map(|t| t.code.as_str())
    }

    #[test]
    fn loads_the_vendored_code_set() {
        let codes = codes();
        assert_eq!(codes.version(), "25.1");
        // 883 codes in 25.1, each with its quoted multi-line definitions read as one field.
        assert_eq!(codes.len(), 883);
        assert!(codes
            .lookup("207K00000X")
            .unwrap()
            .definition
            .as_deref()
            .unwrap()
            .contains(", "));
    }

    #[test]
    fn looks_codes_up() {
        let im = codes().lookup("207R00000X").unwrap();
        assert_eq!(im.classification, "Internal Medicine");
        assert_eq!(im.specialization, None);
        assert_eq!(im.grouping, "Allopathic & Osteopathic Physicians");
        assert_eq!(im.display_name.as_deref(), Some("Internal Medicine Physician"));
        assert_eq!(im.section, "Individual");
        assert_eq!(
            codes().display("363LF0000X").as_deref(),
            Some("Family Nurse Practitioner")
        );
        let radiology = codes().lookup("2085R0202X").unwrap();
        assert_eq!(radiology.classification, "Radiology");
        assert_eq!(radiology.specialization.as_deref(), Some("Diagnostic Radiology"));
        assert_eq!(
            codes().lookup("193200000X").unwrap().grouping,
            "Group",
            "group taxonomies are in the set too"
        );
        assert_eq!(codes().lookup("261QF0400X").unwrap().section, "Non-Individual");
        assert!(codes().lookup("999999999X").is_none());
        assert!(codes().display("").is_none());
    }

    #[test]
    fn display_falls_back_to_classification_and_specialization() {
        let mut t = codes().lookup("2085R0202X").unwrap().clone();
        t.display_name = None;
        assert_eq!(t.display(), "Radiology, Diagnostic Radiology");
        t.specialization = None;
        assert_eq!(t.display(), "Radiology");
    }

    #[test]
    fn finds_codes_from_text() {
        assert_eq!(first("family nurse practitioner"), Some("363LF0000X"));
        assert_eq!(first("Internal Medicine Physician"), Some("207R00000X"));
        // NPPES `desc` forms.
        assert_eq!(first("Internal Medicine"), Some("207R00000X"));
        assert_eq!(
            first("Obstetrics & Gynecology, Reproductive Endocrinology"),
            Some("207VE0102X")
        );
        assert_eq!(first("Nurse Practitioner Family"), Some("363LF0000X"));
        assert_eq!(first("Nurse Practitioner, Family"), Some("363LF0000X"));
        assert_eq!(first("Physical Therapist Sports"), Some("2251S0007X"));
        assert_eq!(first("Radiology, Diagnostic Radiology"), Some("2085R0202X"));
        // Every word must match.
        let cardiology: Vec<_> = codes().find("CARDIOLOGY pediatric");
        assert!(!cardiology.is_empty());
        assert!(cardiology.iter().all(|t| {
            let all = format!("{} {:?} {:?}", t.classification, t.specialization, t.display_name).to_lowercase();
            all.contains("cardiolog") && all.contains("pediatric")
        }));
        assert!(codes().find("zzz unknown specialty").is_empty());
        assert!(codes().find(" , ").is_empty());
    }

    #[test]
    fn reads_the_version_from_nucc_file_names() {
        assert_eq!(version_from_file_name("nucc_taxonomy_251.csv").as_deref(), Some("25.1"));
        assert_eq!(version_from_file_name("nucc_taxonomy_240.csv").as_deref(), Some("24.0"));
        assert_eq!(version_from_file_name("taxonomy.csv"), None);
        assert!(matches!(
            NuccCodeSet::load(Path::new("/nonexistent/taxonomy.csv")),
            Err(NuccError::Version(_))
        ));
        assert!(matches!(
            NuccCodeSet::load(Path::new("/nonexistent/nucc_taxonomy_251.csv")),
            Err(NuccError::Io { .. })
        ));
    }

    #[test]
    fn needs_the_nucc_columns() {
        let err = NuccCodeSet::from_reader("Code,Grouping\n101Y00000X,Behavioral\n".as_bytes(), "1.0").unwrap_err();
        assert!(matches!(err, NuccError::MissingColumn("Classification")), "{err}");
    }

    #[test]
    fn system_uri() {
        assert_eq!(NUCC_SYSTEM, "http://nucc.org/provider-taxonomy");
    }
}
