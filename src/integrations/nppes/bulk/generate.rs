//! A synthetic NPPES Data Dissemination bundle for tests and benchmarks: the four data files with
//! CMS's real headers and their `_fileheader.csv` companions, in CMS's byte format (every value
//! quoted, ISO-8859-1, LF line ends), from a seeded PRNG so that a seed always gives the same
//! bytes. Rows are written as they are made (O(1) memory), so millions of rows are fine.
//!
//! Shape of the data: ~80 % individuals / 20 % organizations (configurable); common US names,
//! some with Latin-1 accents (JOSÉ, MUÑOZ written as single bytes 0xC9, 0xD1); 1–3 NUCC
//! taxonomies per provider with exactly one primary, licenses in the practice state; all 50
//! states + DC with real cities and 5- or 9-digit ZIPs; valid NPIs (Luhn over 80840 + 9 digits);
//! organization subparts with their parent's legal business name; authorized officials for
//! organizations; deactivated rows (NPI and deactivation date only, as CMS publishes them),
//! reactivated rows (both dates), addresses with a newline inside the quoted value, and on request
//! deliberately broken rows.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate};

use super::headers::{ENDPOINT_COLUMNS_V2, NPIDATA_COLUMNS_V2, OTHERNAME_COLUMNS_V2, PL_COLUMNS_V2};
use crate::integrations::nppes::NuccCodeSet;

/// The period in the generated file names, as in a monthly bundle.
pub const GENERATED_PERIOD: &str = "20050523-20251109";

/// Taxonomy codes the generator picks from, by who may hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxonomyPool {
    pub individual: Vec<String>,
    pub organization: Vec<String>,
}

impl TaxonomyPool {
    /// NUCC's "Individual" section for individuals, "Non-Individual" for organizations.
    pub fn from_code_set(codes: &NuccCodeSet) -> TaxonomyPool {
        let (individual, organization): (Vec<_>, Vec<_>) = codes.all().iter().partition(|t| t.section == "Individual");
        TaxonomyPool {
            individual: individual.into_iter().map(|t| t.code.clone()).collect(),
            organization: organization.into_iter().map(|t| t.code.clone()).collect(),
        }
    }

    /// The same codes for everyone.
    pub fn from_codes(codes: &[&str]) -> TaxonomyPool {
        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        TaxonomyPool {
            individual: codes.clone(),
            organization: codes,
        }
    }
}

impl Default for TaxonomyPool {
    /// A few of the most common NUCC codes in NPPES.
    fn default() -> TaxonomyPool {
        let individual = [
            "207Q00000X", // Family Medicine
            "207R00000X", // Internal Medicine
            "363LF0000X", // Nurse Practitioner, Family
            "363A00000X", // Physician Assistant
            "163W00000X", // Registered Nurse
            "1223G0001X", // Dentist, General Practice
            "225100000X", // Physical Therapist
            "1041C0700X", // Clinical Social Worker
            "183500000X", // Pharmacist
            "152W00000X", // Optometrist
            "208000000X", // Pediatrics
            "2084P0800X", // Psychiatry
        ];
        let organization = [
            "261QP2300X", // Clinic/Center, Primary Care
            "282N00000X", // General Acute Care Hospital
            "3336C0003X", // Community/Retail Pharmacy
            "251E00000X", // Home Health
            "332B00000X", // Durable Medical Equipment & Medical Supplies
            "193200000X", // Multi-Specialty Group
            "261QM1300X", // Clinic/Center, Multi-Specialty
            "314000000X", // Skilled Nursing Facility
        ];
        TaxonomyPool {
            individual: individual.iter().map(|c| c.to_string()).collect(),
            organization: organization.iter().map(|c| c.to_string()).collect(),
        }
    }
}

/// What to generate. Fractions are of all `npidata_pfile` rows unless said otherwise.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Records in `npidata_pfile` (broken ones included).
    pub rows: u64,
    pub seed: u64,
    /// Of the active rows.
    pub organization_fraction: f64,
    pub deactivated_fraction: f64,
    /// Active rows that were deactivated and reactivated (both dates filled).
    pub reactivated_fraction: f64,
    /// Active rows whose practice address line 2 holds a newline.
    pub multiline_fraction: f64,
    /// Active providers with 1–2 `pl_pfile` rows.
    pub secondary_location_fraction: f64,
    /// Active organizations with 1–2 `othername_pfile` rows.
    pub other_name_fraction: f64,
    /// Active providers with an `endpoint_pfile` row.
    pub endpoint_fraction: f64,
    /// Every n-th `npidata_pfile` record is broken (wrong field count, short NPI, unknown entity
    /// type or impossible date, in turn).
    pub bad_row_every: Option<u64>,
    pub taxonomies: TaxonomyPool,
}

impl Default for GenerateOptions {
    fn default() -> GenerateOptions {
        GenerateOptions {
            rows: 1000,
            seed: 1,
            organization_fraction: 0.2,
            deactivated_fraction: 0.02,
            reactivated_fraction: 0.005,
            multiline_fraction: 0.002,
            secondary_location_fraction: 0.1,
            other_name_fraction: 0.25,
            endpoint_fraction: 0.05,
            bad_row_every: None,
            taxonomies: TaxonomyPool::default(),
        }
    }
}

/// The files written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFiles {
    pub npidata: PathBuf,
    pub secondary_locations: PathBuf,
    pub other_names: PathBuf,
    pub endpoints: PathBuf,
}

/// Rows written, per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSummary {
    pub files: GeneratedFiles,
    /// All `npidata_pfile` records, broken ones included.
    pub provider_rows: u64,
    pub individuals: u64,
    pub organizations: u64,
    pub organization_subparts: u64,
    pub deactivated: u64,
    pub reactivated: u64,
    pub multiline: u64,
    /// The lines the broken records start on.
    pub bad_row_lines: Vec<u64>,
    pub secondary_locations: u64,
    pub other_names: u64,
    pub endpoints: u64,
}

/// Writes the bundle into `dir` (created if missing) and says what it wrote.
pub fn generate(dir: &Path, options: &GenerateOptions) -> io::Result<GeneratedSummary> {
    if options.taxonomies.individual.is_empty() || options.taxonomies.organization.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the taxonomy pool is empty",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let files = GeneratedFiles {
        npidata: dir.join(format!("npidata_pfile_{GENERATED_PERIOD}.csv")),
        secondary_locations: dir.join(format!("pl_pfile_{GENERATED_PERIOD}.csv")),
        other_names: dir.join(format!("othername_pfile_{GENERATED_PERIOD}.csv")),
        endpoints: dir.join(format!("endpoint_pfile_{GENERATED_PERIOD}.csv")),
    };
    let mut generator = Generator {
        rng: SplitMix64(options.seed),
        options,
        npidata: CsvOut::create(&files.npidata, &NPIDATA_COLUMNS_V2)?,
        pl: CsvOut::create(&files.secondary_locations, &PL_COLUMNS_V2)?,
        othername: CsvOut::create(&files.other_names, &OTHERNAME_COLUMNS_V2)?,
        endpoint: CsvOut::create(&files.endpoints, &ENDPOINT_COLUMNS_V2)?,
        summary: GeneratedSummary {
            files: files.clone(),
            provider_rows: 0,
            individuals: 0,
            organizations: 0,
            organization_subparts: 0,
            deactivated: 0,
            reactivated: 0,
            multiline: 0,
            bad_row_lines: Vec::new(),
            secondary_locations: 0,
            other_names: 0,
            endpoints: 0,
        },
    };
    for index in 0..options.rows {
        generator.provider(index)?;
    }
    generator.npidata.finish()?;
    generator.pl.finish()?;
    generator.othername.finish()?;
    generator.endpoint.finish()?;
    Ok(generator.summary)
}

/// Writes the deactivation report in its CSV form: the two columns CMS's workbook has, header
/// `NPI`, `NPPES Deactivation Date`, dates `MM/DD/YYYY`.
pub fn generate_deactivation_report(path: &Path, npis_and_dates: &[(&str, NaiveDate)]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "\"NPI\",\"NPPES Deactivation Date\"")?;
    for (npi, date) in npis_and_dates {
        writeln!(out, "\"{npi}\",\"{}\"", date.format("%m/%d/%Y"))?;
    }
    out.flush()
}

/// The NPI with base `index` of a run: distinct for the first 200 million indexes, starting
/// with 1 or 2 as CMS's do, with a valid check digit.
pub fn synthetic_npi(seed: u64, index: u64) -> String {
    const SPAN: u64 = 200_000_000;
    // 7919 is prime and not a factor of 2^9·5^8 = SPAN, so index → base is one-to-one.
    let base = 100_000_000 + (seed % SPAN + index % SPAN * 7919) % SPAN;
    let digits = base.to_string();
    format!("{digits}{}", npi_check_digit(digits.as_bytes()))
}

/// Luhn over "80840" + the nine base digits (the prefix adds 24 to the sum).
fn npi_check_digit(base: &[u8]) -> u8 {
    let sum: u32 = base
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b - b'0');
            // With the check digit appended, the base digits at even positions from the left are
            // the doubled ones.
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum::<u32>()
        + 24;
    ((10 - sum % 10) % 10) as u8
}

/// splitmix64: tiny, fast, and good enough for test data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len() as u64) as usize]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
}

/// One CSV file being written: a reusable buffer per column, every value quoted, text encoded as
/// ISO-8859-1 like CMS's files.
struct CsvOut {
    out: BufWriter<File>,
    fields: Vec<Vec<u8>>,
    index: HashMap<&'static str, usize>,
    /// The line the next record starts on.
    line: u64,
}

impl CsvOut {
    fn create(path: &Path, columns: &[&'static str]) -> io::Result<CsvOut> {
        let header = columns.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(",") + "\n";
        // The companion file holds the header row only.
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        std::fs::write(path.with_file_name(format!("{stem}_fileheader.csv")), &header)?;
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(header.as_bytes())?;
        Ok(CsvOut {
            out,
            fields: vec![Vec::new(); columns.len()],
            index: columns.iter().enumerate().map(|(i, c)| (*c, i)).collect(),
            line: 2,
        })
    }

    fn set(&mut self, column: &str, value: &str) {
        let i = *self.index.get(column).unwrap_or_else(|| panic!("no column {column:?}"));
        let field = &mut self.fields[i];
        field.clear();
        // Latin-1: each char below U+0100 is one byte; the generator writes nothing above.
        field.extend(value.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')));
    }

    /// Writes the record (all but the last `drop_fields` fields) and clears the buffers.
    fn write(&mut self, drop_fields: usize) -> io::Result<u64> {
        let start = self.line;
        let kept = self.fields.len() - drop_fields;
        for (i, field) in self.fields[..kept].iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            self.out.write_all(b"\"")?;
            self.out.write_all(field)?;
            self.out.write_all(b"\"")?;
            self.line += field.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.out.write_all(b"\n")?;
        self.line += 1;
        self.fields.iter_mut().for_each(Vec::clear);
        Ok(start)
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

const MALE_FIRST: &[&str] = &[
    "JAMES",
    "JOHN",
    "ROBERT",
    "MICHAEL",
    "WILLIAM",
    "DAVID",
    "RICHARD",
    "JOSEPH",
    "THOMAS",
    "CHARLES",
    "CHRISTOPHER",
    "DANIEL",
    "MATTHEW",
    "ANTHONY",
    "MARK",
    "STEVEN",
    "PAUL",
    "ANDREW",
    "KEVIN",
    "BRIAN",
    "JOSÉ",
    "RENÉ",
    "ANDRÉ",
    "LUIS",
    "CARLOS",
    "WEI",
    "RAJ",
    "AHMED",
];
const FEMALE_FIRST: &[&str] = &[
    "MARY",
    "PATRICIA",
    "JENNIFER",
    "LINDA",
    "ELIZABETH",
    "BARBARA",
    "SUSAN",
    "JESSICA",
    "SARAH",
    "KAREN",
    "LISA",
    "NANCY",
    "ASHLEY",
    "EMILY",
    "MICHELLE",
    "AMANDA",
    "MELISSA",
    "STEPHANIE",
    "NICOLE",
    "LAURA",
    "MARÍA",
    "INÉS",
    "CHLOÉ",
    "ZOË",
    "ANA",
    "PRIYA",
    "MEI",
];
const LAST: &[&str] = &[
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "WALKER",
    "YOUNG",
    "ALLEN",
    "KING",
    "WRIGHT",
    "SCOTT",
    "NGUYEN",
    "PATEL",
    "KIM",
    "CHEN",
    "O'BRIEN",
    "MUÑOZ",
    "PEÑA",
    "NÚÑEZ",
    "IBÁÑEZ",
    "GÓMEZ",
    "BÉLANGER",
];
const CREDENTIALS: &[&str] = &[
    "M.D.", "MD", "D.O.", "NP", "FNP-C", "PA-C", "RN", "DDS", "PHARMD", "LCSW", "PT, DPT", "OD",
];
const ORG_KINDS: &[&str] = &[
    "FAMILY MEDICINE",
    "PEDIATRICS",
    "ORTHOPEDIC ASSOCIATES",
    "HOME HEALTH",
    "PHARMACY",
    "DENTAL GROUP",
    "IMAGING CENTER",
    "SURGERY CENTER",
    "BEHAVIORAL HEALTH",
    "PHYSICAL THERAPY",
    "MEDICAL SUPPLY",
    "REGIONAL HOSPITAL",
];
const ORG_SUFFIXES: &[&str] = &["LLC", "INC", "PC", "PLLC", "PA", "LLP", "INC."];
const OFFICIAL_TITLES: &[&str] = &[
    "PRESIDENT",
    "CEO",
    "ADMINISTRATOR",
    "OFFICE MANAGER",
    "CFO",
    "OWNER",
    "DIRECTOR",
];
const STREETS: &[&str] = &[
    "MAIN ST",
    "OAK AVE",
    "MAPLE DR",
    "PARK BLVD",
    "WASHINGTON ST",
    "2ND ST",
    "ELM ST",
    "LAKE RD",
    "HILL ST",
    "CENTER DR",
    "MEDICAL PKWY",
    "HOSPITAL DR",
    "PRESIDENTIAL DR",
    "UNIVERSITY AVE",
];
const ISSUERS: &[&str] = &["BCBS", "AETNA", "UNITED HEALTHCARE", "CIGNA", "HUMANA", "RR MEDICARE"];

/// State, then its cities with the first three digits of their ZIP codes.
const PLACES: &[(&str, &[(&str, &str)])] = &[
    ("AL", &[("BIRMINGHAM", "352"), ("MONTGOMERY", "361")]),
    ("AK", &[("ANCHORAGE", "995"), ("FAIRBANKS", "997")]),
    ("AZ", &[("PHOENIX", "850"), ("TUCSON", "857")]),
    ("AR", &[("LITTLE ROCK", "722"), ("FAYETTEVILLE", "727")]),
    (
        "CA",
        &[("LOS ANGELES", "900"), ("SAN DIEGO", "921"), ("SACRAMENTO", "958")],
    ),
    ("CO", &[("DENVER", "802"), ("COLORADO SPRINGS", "809")]),
    ("CT", &[("HARTFORD", "061"), ("NEW HAVEN", "065")]),
    ("DE", &[("WILMINGTON", "198"), ("DOVER", "199")]),
    ("DC", &[("WASHINGTON", "200")]),
    ("FL", &[("MIAMI", "331"), ("ORLANDO", "328"), ("TAMPA", "336")]),
    ("GA", &[("ATLANTA", "303"), ("SAVANNAH", "314")]),
    ("HI", &[("HONOLULU", "968"), ("HILO", "967")]),
    ("ID", &[("BOISE", "837"), ("IDAHO FALLS", "834")]),
    ("IL", &[("CHICAGO", "606"), ("SPRINGFIELD", "627")]),
    ("IN", &[("INDIANAPOLIS", "462"), ("FORT WAYNE", "468")]),
    ("IA", &[("DES MOINES", "503"), ("CEDAR RAPIDS", "524")]),
    ("KS", &[("WICHITA", "672"), ("TOPEKA", "666")]),
    ("KY", &[("LOUISVILLE", "402"), ("LEXINGTON", "405")]),
    ("LA", &[("NEW ORLEANS", "701"), ("BATON ROUGE", "708")]),
    ("ME", &[("PORTLAND", "041"), ("BANGOR", "044")]),
    ("MD", &[("BALTIMORE", "212"), ("ROCKVILLE", "208")]),
    ("MA", &[("BOSTON", "021"), ("WORCESTER", "016")]),
    ("MI", &[("DETROIT", "482"), ("GRAND RAPIDS", "495")]),
    ("MN", &[("MINNEAPOLIS", "554"), ("SAINT PAUL", "551")]),
    ("MS", &[("JACKSON", "392"), ("GULFPORT", "395")]),
    ("MO", &[("SAINT LOUIS", "631"), ("KANSAS CITY", "641")]),
    ("MT", &[("BILLINGS", "591"), ("MISSOULA", "598")]),
    ("NE", &[("OMAHA", "681"), ("LINCOLN", "685")]),
    ("NV", &[("LAS VEGAS", "891"), ("RENO", "895")]),
    ("NH", &[("MANCHESTER", "031"), ("CONCORD", "033")]),
    ("NJ", &[("NEWARK", "071"), ("TRENTON", "086")]),
    ("NM", &[("ALBUQUERQUE", "871"), ("SANTA FE", "875")]),
    ("NY", &[("NEW YORK", "100"), ("BUFFALO", "142"), ("ROCHESTER", "146")]),
    ("NC", &[("CHARLOTTE", "282"), ("RALEIGH", "276")]),
    ("ND", &[("FARGO", "581"), ("BISMARCK", "585")]),
    ("OH", &[("COLUMBUS", "432"), ("CLEVELAND", "441"), ("DAYTON", "454")]),
    ("OK", &[("OKLAHOMA CITY", "731"), ("TULSA", "741")]),
    ("OR", &[("PORTLAND", "972"), ("EUGENE", "974")]),
    ("PA", &[("PHILADELPHIA", "191"), ("PITTSBURGH", "152")]),
    ("RI", &[("PROVIDENCE", "029"), ("WARWICK", "028")]),
    ("SC", &[("COLUMBIA", "292"), ("CHARLESTON", "294")]),
    ("SD", &[("SIOUX FALLS", "571"), ("RAPID CITY", "577")]),
    ("TN", &[("NASHVILLE", "372"), ("MEMPHIS", "381")]),
    (
        "TX",
        &[
            ("HOUSTON", "770"),
            ("DALLAS", "752"),
            ("SAN ANTONIO", "782"),
            ("AUSTIN", "787"),
        ],
    ),
    ("UT", &[("SALT LAKE CITY", "841"), ("PROVO", "846")]),
    ("VT", &[("BURLINGTON", "054"), ("MONTPELIER", "056")]),
    ("VA", &[("RICHMOND", "232"), ("NORFOLK", "235")]),
    ("WA", &[("SEATTLE", "981"), ("SPOKANE", "992")]),
    ("WV", &[("CHARLESTON", "253"), ("MORGANTOWN", "265")]),
    ("WI", &[("MILWAUKEE", "532"), ("MADISON", "537")]),
    ("WY", &[("CHEYENNE", "820"), ("CASPER", "826")]),
];

/// An address as the generator writes it.
struct Place {
    line1: String,
    line2: Option<String>,
    city: &'static str,
    state: &'static str,
    zip: String,
    phone: String,
    fax: Option<String>,
}

struct Generator<'a> {
    rng: SplitMix64,
    options: &'a GenerateOptions,
    npidata: CsvOut,
    pl: CsvOut,
    othername: CsvOut,
    endpoint: CsvOut,
    summary: GeneratedSummary,
}

const FIRST_DAY: (i32, u32, u32) = (2005, 5, 23);
const LAST_DAY: (i32, u32, u32) = (2025, 11, 9);

fn day(ymd: (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(ymd.0, ymd.1, ymd.2).expect("a valid constant date")
}

fn mdy(date: NaiveDate) -> String {
    format!("{:02}/{:02}/{}", date.month(), date.day(), date.year())
}

impl Generator<'_> {
    fn provider(&mut self, index: u64) -> io::Result<()> {
        let options = self.options;
        let npi = synthetic_npi(options.seed, index);
        self.summary.provider_rows += 1;
        if options.bad_row_every.is_some_and(|n| n > 0 && index % n == n - 1) {
            return self.broken(&npi);
        }
        if self.rng.chance(options.deactivated_fraction) {
            // CMS keeps only the NPI and the deactivation date of a deactivated NPI.
            let date = self.date_between(day(FIRST_DAY) + Duration::days(365), day(LAST_DAY));
            self.npidata.set("NPI", &npi);
            self.npidata.set("NPI Deactivation Date", &mdy(date));
            self.npidata.write(0)?;
            self.summary.deactivated += 1;
            return Ok(());
        }
        let organization = self.rng.chance(options.organization_fraction);
        self.npidata.set("NPI", &npi);
        self.npidata
            .set("Entity Type Code", if organization { "2" } else { "1" });
        let enumerated = self.date_between(day(FIRST_DAY), day(LAST_DAY) - Duration::days(30));
        let updated = self.date_between(enumerated, day(LAST_DAY));
        self.npidata.set("Provider Enumeration Date", &mdy(enumerated));
        self.npidata.set("Last Update Date", &mdy(updated));
        if self.rng.chance(0.6) {
            let certified = self.date_between(enumerated, updated);
            self.npidata.set("Certification Date", &mdy(certified));
        }
        if self.rng.chance(options.reactivated_fraction) && updated - enumerated > Duration::days(60) {
            let deactivated = self.date_between(enumerated, updated - Duration::days(30));
            let reactivated = self.date_between(deactivated + Duration::days(1), updated);
            self.npidata.set("NPI Deactivation Date", &mdy(deactivated));
            self.npidata.set("NPI Reactivation Date", &mdy(reactivated));
            self.summary.reactivated += 1;
        }

        let mailing = self.place();
        let practice = if self.rng.chance(0.7) {
            self.place_like(&mailing)
        } else {
            self.place()
        };
        let practice_state = practice.state;
        self.address("Mailing", &mailing);
        let mut practice = practice;
        if self.rng.chance(options.multiline_fraction) {
            // A newline inside a quoted value: the CSV record spans two physical lines.
            practice.line2 = Some(format!(
                "SUITE {}\nBLDG {}",
                100 + self.rng.below(900),
                self.rng.below(9) + 1
            ));
            self.summary.multiline += 1;
        }
        self.address("Practice Location", &practice);

        let (name_for_endpoint, codes) = if organization {
            self.summary.organizations += 1;
            (
                self.organization(&npi, practice.city)?,
                &options.taxonomies.organization,
            )
        } else {
            self.summary.individuals += 1;
            (self.individual(), &options.taxonomies.individual)
        };
        self.taxonomies(codes, practice_state, organization);
        self.identifiers(practice_state);
        self.npidata.write(0)?;

        if self.rng.chance(options.secondary_location_fraction) {
            for _ in 0..1 + self.rng.below(2) {
                self.secondary_location(&npi)?;
            }
        }
        if self.rng.chance(options.endpoint_fraction) {
            self.endpoint_row(&npi, &name_for_endpoint, &practice)?;
        }
        Ok(())
    }

    /// A record the reader must report, in one of four ways.
    fn broken(&mut self, npi: &str) -> io::Result<()> {
        let kind = self.summary.bad_row_lines.len() % 4;
        self.npidata.set("NPI", if kind == 1 { "12345678" } else { npi });
        self.npidata.set("Entity Type Code", if kind == 2 { "3" } else { "1" });
        self.npidata.set("Provider Last Name (Legal Name)", "BROKEN");
        self.npidata.set(
            "Provider Enumeration Date",
            if kind == 3 { "13/32/2019" } else { "01/02/2019" },
        );
        let line = self.npidata.write(if kind == 0 { 3 } else { 0 })?;
        self.summary.bad_row_lines.push(line);
        Ok(())
    }

    fn date_between(&mut self, from: NaiveDate, to: NaiveDate) -> NaiveDate {
        let days = (to - from).num_days().max(0) as u64;
        from + Duration::days(self.rng.below(days + 1) as i64)
    }

    fn phone(&mut self) -> String {
        format!("{}{}", 2 + self.rng.below(8), self.rng.digits(9))
    }

    fn place(&mut self) -> Place {
        let (state, cities) = PLACES[self.rng.below(PLACES.len() as u64) as usize];
        let (city, zip3) = cities[self.rng.below(cities.len() as u64) as usize];
        self.place_in(state, city, zip3)
    }

    fn place_in(&mut self, state: &'static str, city: &'static str, zip3: &str) -> Place {
        let zip = if self.rng.chance(0.6) {
            format!("{zip3}{}", self.rng.digits(6))
        } else {
            format!("{zip3}{}", self.rng.digits(2))
        };
        let line2 = match self.rng.below(10) {
            0..=1 => Some(format!("SUITE {}", 100 + self.rng.below(900))),
            2 => Some(format!("STE {}", 1 + self.rng.below(50))),
            3 => Some(format!("BLDG {}", char::from(b'A' + self.rng.below(6) as u8))),
            _ => None,
        };
        Place {
            line1: format!("{} {}", 1 + self.rng.below(9999), self.rng.pick(STREETS)),
            line2,
            city,
            state,
            zip,
            phone: self.phone(),
            fax: self.rng.chance(0.5).then(|| self.phone()),
        }
    }

    /// The practice address is often the mailing one, or another in the same city.
    fn place_like(&mut self, other: &Place) -> Place {
        if self.rng.chance(0.7) {
            return Place {
                line1: other.line1.clone(),
                line2: other.line2.clone(),
                city: other.city,
                state: other.state,
                zip: other.zip.clone(),
                phone: other.phone.clone(),
                fax: other.fax.clone(),
            };
        }
        let zip3 = other.zip[..3].to_string();
        self.place_in(other.state, other.city, &zip3)
    }

    fn address(&mut self, kind: &str, place: &Place) {
        let out = &mut self.npidata;
        out.set(&format!("Provider First Line Business {kind} Address"), &place.line1);
        if let Some(line2) = &place.line2 {
            out.set(&format!("Provider Second Line Business {kind} Address"), line2);
        }
        out.set(&format!("Provider Business {kind} Address City Name"), place.city);
        out.set(&format!("Provider Business {kind} Address State Name"), place.state);
        out.set(&format!("Provider Business {kind} Address Postal Code"), &place.zip);
        out.set(
            &format!("Provider Business {kind} Address Country Code (If outside U.S.)"),
            "US",
        );
        out.set(
            &format!("Provider Business {kind} Address Telephone Number"),
            &place.phone,
        );
        if let Some(fax) = &place.fax {
            out.set(&format!("Provider Business {kind} Address Fax Number"), fax);
        }
    }

    /// Names of an individual; returns "first.last" for a Direct address.
    fn individual(&mut self) -> String {
        let female = self.rng.chance(0.5);
        let first = self.rng.pick(if female { FEMALE_FIRST } else { MALE_FIRST });
        let last = self.rng.pick(LAST);
        let out = &mut self.npidata;
        out.set("Provider Last Name (Legal Name)", last);
        out.set("Provider First Name", first);
        out.set("Provider Sex Code", if female { "F" } else { "M" });
        if self.rng.chance(0.5) {
            let middle = char::from(b'A' + self.rng.below(26) as u8).to_string();
            self.npidata.set("Provider Middle Name", &middle);
        }
        if self.rng.chance(0.3) {
            self.npidata.set("Provider Name Prefix Text", "DR.");
        }
        if self.rng.chance(0.03) {
            let suffix = self.rng.pick(&["JR.", "SR.", "III", "II"]);
            self.npidata.set("Provider Name Suffix Text", suffix);
        }
        if self.rng.chance(0.85) {
            let credential = self.rng.pick(CREDENTIALS);
            self.npidata.set("Provider Credential Text", credential);
        }
        if self.rng.chance(0.02) {
            let other_last = self.rng.pick(LAST);
            self.npidata.set("Provider Other Last Name", other_last);
            self.npidata.set("Provider Other First Name", first);
            self.npidata.set("Provider Other Last Name Type Code", "1");
        }
        let sole = match self.rng.below(20) {
            0..=3 => "Y",
            4 => "X",
            _ => "N",
        };
        self.npidata.set("Is Sole Proprietor", sole);
        format!("{first}.{last}").to_ascii_lowercase().replace('\'', "")
    }

    /// An organization's names, official and other names; returns its legal business name.
    fn organization(&mut self, npi: &str, city: &str) -> io::Result<String> {
        let name = format!("{} {} {}", city, self.rng.pick(ORG_KINDS), self.rng.pick(ORG_SUFFIXES));
        self.npidata
            .set("Provider Organization Name (Legal Business Name)", &name);
        self.npidata.set("Employer Identification Number (EIN)", "<UNAVAIL>");
        if self.rng.chance(0.15) {
            let parent = format!("{} HEALTH SYSTEM {}", city, self.rng.pick(ORG_SUFFIXES));
            self.npidata.set("Is Organization Subpart", "Y");
            self.npidata.set("Parent Organization LBN", &parent);
            self.npidata.set("Parent Organization TIN", "<UNAVAIL>");
            self.summary.organization_subparts += 1;
        } else {
            self.npidata.set("Is Organization Subpart", "N");
        }
        if self.rng.chance(0.1) {
            let dba = format!("{} {}", city, self.rng.pick(ORG_KINDS));
            self.npidata.set("Provider Other Organization Name", &dba);
            self.npidata.set("Provider Other Organization Name Type Code", "3");
        }
        let female = self.rng.chance(0.5);
        let first = self.rng.pick(if female { FEMALE_FIRST } else { MALE_FIRST });
        let last = self.rng.pick(LAST);
        let title = self.rng.pick(OFFICIAL_TITLES);
        let phone = self.phone();
        let out = &mut self.npidata;
        out.set("Authorized Official Last Name", last);
        out.set("Authorized Official First Name", first);
        out.set("Authorized Official Title or Position", title);
        out.set("Authorized Official Telephone Number", &phone);
        if self.rng.chance(0.5) {
            self.npidata.set(
                "Authorized Official Name Prefix Text",
                if female { "MS." } else { "MR." },
            );
        }
        if self.rng.chance(0.2) {
            let credential = self.rng.pick(&["MD", "RN", "MBA", "CPA"]);
            self.npidata.set("Authorized Official Credential Text", credential);
        }
        if self.rng.chance(self.options.other_name_fraction) {
            for _ in 0..1 + self.rng.below(2) {
                let other = format!("{} {}", self.rng.pick(LAST), self.rng.pick(ORG_KINDS));
                let type_code = self.rng.pick(&["3", "3", "4", "5"]);
                self.othername.set("NPI", npi);
                self.othername.set("Provider Other Organization Name", &other);
                self.othername
                    .set("Provider Other Organization Name Type Code", type_code);
                self.othername.write(0)?;
                self.summary.other_names += 1;
            }
        }
        Ok(name)
    }

    /// 1–3 distinct codes in blocks 1.., exactly one primary.
    fn taxonomies(&mut self, codes: &[String], state: &str, organization: bool) {
        let count = (1 + self.rng.below(3) as usize).min(codes.len());
        let primary = self.rng.below(count as u64) as usize;
        let mut chosen: Vec<usize> = Vec::with_capacity(count);
        while chosen.len() < count {
            let pick = self.rng.below(codes.len() as u64) as usize;
            if !chosen.contains(&pick) {
                chosen.push(pick);
            }
        }
        for (block, &code) in chosen.iter().enumerate() {
            let n = block + 1;
            self.npidata
                .set(&format!("Healthcare Provider Taxonomy Code_{n}"), &codes[code]);
            let licensed = !organization || self.rng.chance(0.3);
            if licensed {
                let license = format!("{}{}", char::from(b'A' + self.rng.below(26) as u8), self.rng.digits(6));
                self.npidata.set(&format!("Provider License Number_{n}"), &license);
                self.npidata
                    .set(&format!("Provider License Number State Code_{n}"), state);
            }
            self.npidata.set(
                &format!("Healthcare Provider Primary Taxonomy Switch_{n}"),
                if block == primary { "Y" } else { "N" },
            );
            if self.rng.chance(0.05) {
                self.npidata.set(
                    &format!("Healthcare Provider Taxonomy Group_{n}"),
                    "193200000X MULTI-SPECIALTY GROUP",
                );
            }
        }
    }

    fn identifiers(&mut self, state: &str) {
        if !self.rng.chance(0.3) {
            return;
        }
        for n in 1..=1 + self.rng.below(2) {
            let (value, type_code) = if self.rng.chance(0.02) {
                // An SSN typed into the field, masked by CMS.
                ("$$$$$$$$$".to_string(), "01")
            } else if self.rng.chance(0.5) {
                (format!("{}{}", state, self.rng.digits(7)), "05")
            } else {
                (self.rng.digits(9), "01")
            };
            self.npidata.set(&format!("Other Provider Identifier_{n}"), &value);
            self.npidata
                .set(&format!("Other Provider Identifier Type Code_{n}"), type_code);
            self.npidata.set(&format!("Other Provider Identifier State_{n}"), state);
            if type_code == "01" {
                let issuer = self.rng.pick(ISSUERS);
                self.npidata
                    .set(&format!("Other Provider Identifier Issuer_{n}"), issuer);
            }
        }
    }

    fn secondary_location(&mut self, npi: &str) -> io::Result<()> {
        let place = self.place();
        let out = &mut self.pl;
        out.set("NPI", npi);
        out.set(
            "Provider Secondary Practice Location Address- Address Line 1",
            &place.line1,
        );
        if let Some(line2) = &place.line2 {
            out.set("Provider Secondary Practice Location Address-  Address Line 2", line2);
        }
        out.set("Provider Secondary Practice Location Address - City Name", place.city);
        out.set("Provider Secondary Practice Location Address - State Name", place.state);
        out.set("Provider Secondary Practice Location Address - Postal Code", &place.zip);
        out.set(
            "Provider Secondary Practice Location Address - Country Code (If outside U.S.)",
            "US",
        );
        out.set(
            "Provider Secondary Practice Location Address - Telephone Number",
            &place.phone,
        );
        if let Some(fax) = &place.fax {
            out.set("Provider Practice Location Address - Fax Number", fax);
        }
        if self.rng.chance(0.05) {
            let extension = self.rng.digits(3);
            self.pl.set(
                "Provider Secondary Practice Location Address - Telephone Extension",
                &extension,
            );
        }
        self.pl.write(0)?;
        self.summary.secondary_locations += 1;
        Ok(())
    }

    fn endpoint_row(&mut self, npi: &str, name: &str, place: &Place) -> io::Result<()> {
        let domain: String = place.city.to_ascii_lowercase().replace(' ', "");
        let out = &mut self.endpoint;
        out.set("NPI", npi);
        if self.rng.chance(0.7) {
            let local: String = name
                .to_ascii_lowercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
                .collect();
            let address = format!("{local}@direct.{domain}health.org");
            let out = &mut self.endpoint;
            out.set("Endpoint Type", "DIRECT");
            out.set("Endpoint Type Description", "Direct Messaging Address");
            out.set("Endpoint", &address);
            out.set("Use Code", "DIRECT");
            out.set("Use Description", "Direct");
        } else {
            let url = format!("https://fhir.{domain}health.org/r4/{npi}");
            out.set("Endpoint Type", "FHIR");
            out.set("Endpoint Type Description", "FHIR URL");
            out.set("Endpoint", &url);
            out.set("Use Code", "OTHER");
            out.set("Use Description", "Other");
            out.set("Other Use Description", "Patient access");
        }
        let out = &mut self.endpoint;
        out.set("Affiliation", "N");
        out.set("Affiliation Address Line One", &place.line1);
        out.set("Affiliation Address City", place.city);
        out.set("Affiliation Address State", place.state);
        out.set("Affiliation Address Country", "US");
        out.set("Affiliation Address Postal Code", &place.zip);
        out.write(0)?;
        self.summary.endpoints += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::reader::{parse_rate, EndpointReader, OtherNameReader, ProviderReader, SecondaryLocationReader};
    use super::super::row::{EntityType, ProviderRow};
    use super::*;
    use crate::integrations::nppes::Npi;

    fn code_set() -> NuccCodeSet {
        NuccCodeSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/nucc/nucc_taxonomy_251.csv")).unwrap()
    }

    #[test]
    fn synthetic_npis_are_valid_and_distinct() {
        let mut seen = HashSet::new();
        for index in 0..20_000 {
            let npi = synthetic_npi(42, index);
            Npi::parse(&npi).unwrap_or_else(|e| panic!("{e}"));
            assert!(npi.starts_with('1') || npi.starts_with('2'), "{npi}");
            assert!(seen.insert(npi));
        }
    }

    #[test]
    fn the_generated_bundle_reads_back() {
        let codes = code_set();
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            rows: 4000,
            seed: 7,
            bad_row_every: Some(500),
            multiline_fraction: 0.01,
            reactivated_fraction: 0.01,
            taxonomies: TaxonomyPool::from_code_set(&codes),
            ..GenerateOptions::default()
        };
        let summary = generate(dir.path(), &options).unwrap();
        assert_eq!(summary.provider_rows, 4000);
        assert_eq!(summary.bad_row_lines.len(), 8);
        assert_eq!(
            summary.individuals + summary.organizations + summary.deactivated + summary.bad_row_lines.len() as u64,
            4000
        );
        let organization_share = summary.organizations as f64 / (summary.individuals + summary.organizations) as f64;
        assert!((0.15..0.25).contains(&organization_share), "{organization_share}");
        assert!(
            summary.deactivated > 40 && summary.reactivated > 10 && summary.multiline > 10,
            "{summary:?}"
        );
        assert!(summary.organization_subparts > 0);

        let file = File::open(&summary.files.npidata).unwrap();
        let (mut good, mut bad_lines) = (Vec::<ProviderRow>::new(), Vec::new());
        for item in ProviderReader::new(file).unwrap() {
            match item.unwrap() {
                Ok(row) => good.push(row),
                Err(e) => bad_lines.push(e.line),
            }
        }
        assert_eq!(good.len() + bad_lines.len(), 4000);
        assert_eq!(bad_lines, summary.bad_row_lines);

        let mut npis = HashSet::new();
        let mut states = HashSet::new();
        let (mut deactivated, mut reactivated, mut multiline, mut accented) = (0, 0, 0, 0);
        for row in &good {
            Npi::parse(&row.npi).unwrap_or_else(|e| panic!("line {}: {e}", row.line));
            assert!(npis.insert(row.npi.clone()), "duplicate NPI {}", row.npi);
            if row.entity_type.is_none() {
                assert!(row.deactivation_date.is_some() && row.taxonomies.is_empty() && row.last_name.is_none());
                deactivated += 1;
                continue;
            }
            let primaries = row.taxonomies.iter().filter(|t| t.primary).count();
            assert_eq!(primaries, 1, "line {}", row.line);
            assert!((1..=3).contains(&row.taxonomies.len()));
            for taxonomy in &row.taxonomies {
                let known = codes.lookup(&taxonomy.code).expect("a NUCC code");
                let expected = if row.entity_type == Some(EntityType::Individual) {
                    "Individual"
                } else {
                    "Non-Individual"
                };
                assert_eq!(known.section, expected);
            }
            if row.entity_type == Some(EntityType::Individual) {
                assert!(row.last_name.is_some() && row.first_name.is_some() && row.authorized_official.is_none());
                let license = row.taxonomies[0].license.as_ref().expect("individuals are licensed");
                assert_eq!(license.len(), 7);
                assert_eq!(row.taxonomies[0].license_state, row.practice.state);
            } else {
                assert!(row.organization_name.is_some() && row.authorized_official.is_some());
                if row.organization_subpart == Some(true) {
                    assert!(row.parent_organization_lbn.is_some());
                }
            }
            if row.reactivation_date.is_some() {
                assert!(row.deactivation_date < row.reactivation_date);
                reactivated += 1;
            }
            if row.practice.line2.as_deref().is_some_and(|l| l.contains('\n')) {
                multiline += 1;
            }
            let name = format!("{:?}{:?}", row.first_name, row.last_name);
            if name.contains(['É', 'Ñ', 'Í', 'Ë', 'Ú', 'Á', 'Ó']) {
                accented += 1;
            }
            let zip = row.practice.postal_code.as_deref().unwrap();
            assert!(zip.len() == 5 || zip.len() == 9, "{zip}");
            let phone = row.practice.phone.as_deref().unwrap();
            assert!(
                phone.len() == 10 && phone.bytes().all(|b| b.is_ascii_digit()),
                "{phone}"
            );
            states.insert(row.practice.state.clone().unwrap());
        }
        assert_eq!(deactivated, summary.deactivated);
        assert_eq!(reactivated, summary.reactivated);
        assert_eq!(multiline, summary.multiline);
        assert!(accented > 0);
        assert_eq!(states.len(), 51, "all states and DC");

        // Latin-1 on disk: É as the single byte 0xC9, no UTF-8 sequences.
        let bytes = std::fs::read(&summary.files.npidata).unwrap();
        assert!(std::str::from_utf8(&bytes).is_err());
        assert!(!bytes.windows(2).any(|w| w == "É".as_bytes() || w == "Ñ".as_bytes()));

        let locations: Vec<_> = SecondaryLocationReader::new(File::open(&summary.files.secondary_locations).unwrap())
            .unwrap()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(locations.len() as u64, summary.secondary_locations);
        assert!(locations
            .iter()
            .all(|l| npis.contains(&l.npi) && l.address.city.is_some()));
        let names: Vec<_> = OtherNameReader::new(File::open(&summary.files.other_names).unwrap())
            .unwrap()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(names.len() as u64, summary.other_names);
        let organizations: HashSet<&str> = good
            .iter()
            .filter(|r| r.entity_type == Some(EntityType::Organization))
            .map(|r| r.npi.as_str())
            .collect();
        assert!(names.iter().all(|n| organizations.contains(n.npi.as_str())));
        let endpoints: Vec<_> = EndpointReader::new(File::open(&summary.files.endpoints).unwrap())
            .unwrap()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(endpoints.len() as u64, summary.endpoints);
        assert!(summary.secondary_locations > 0 && summary.other_names > 0 && summary.endpoints > 0);

        for path in [&summary.files.npidata, &summary.files.secondary_locations] {
            let companion = path.to_str().unwrap().replace(".csv", "_fileheader.csv");
            let header = std::fs::read_to_string(companion).unwrap();
            assert_eq!(header.lines().count(), 1);
            assert!(bytes.starts_with(header.as_bytes()) || path != &summary.files.npidata);
        }
    }

    #[test]
    fn a_seed_always_gives_the_same_bytes() {
        let options = GenerateOptions {
            rows: 300,
            seed: 99,
            ..GenerateOptions::default()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let first = generate(a.path(), &options).unwrap();
        let second = generate(b.path(), &options).unwrap();
        for (x, y) in [
            (&first.files.npidata, &second.files.npidata),
            (&first.files.secondary_locations, &second.files.secondary_locations),
        ] {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        }
        let other = generate(b.path(), &GenerateOptions { seed: 100, ..options }).unwrap();
        assert_ne!(
            std::fs::read(&first.files.npidata).unwrap(),
            std::fs::read(other.files.npidata).unwrap()
        );
    }

    #[test]
    fn parse_rate_reads_a_csv_or_a_bundle_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            rows: 1000,
            bad_row_every: Some(250),
            ..GenerateOptions::default()
        };
        let summary = generate(dir.path(), &options).unwrap();
        for path in [summary.files.npidata.as_path(), dir.path()] {
            let rate = parse_rate(path).unwrap();
            assert_eq!((rate.rows, rate.bad_rows), (1000, 4));
        }
    }

    /// The baseline of the import benchmark:
    /// `cargo test --release --lib bulk::generate::tests::parse_rate_of_100k -- --ignored --nocapture`.
    #[test]
    #[ignore = "benchmark"]
    fn parse_rate_of_100k_generated_rows() {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let options = GenerateOptions {
            rows: 100_000,
            ..GenerateOptions::default()
        };
        let summary = generate(dir.path(), &options).unwrap();
        let generated = started.elapsed();
        let size = std::fs::metadata(&summary.files.npidata).unwrap().len();
        let rate = parse_rate(&summary.files.npidata).unwrap();
        assert_eq!((rate.rows, rate.bad_rows), (100_000, 0));
        println!(
            "generated 100000 rows ({} MB) in {generated:?}; parsed in {:?}: {:.0} rows/s, {:.0} MB/s",
            size / 1_000_000,
            rate.elapsed,
            rate.rows_per_second(),
            size as f64 / 1e6 / rate.elapsed.as_secs_f64()
        );
    }
}
