//! The monthly NPPES Deactivated NPI Report: `NPPES_Deactivated_NPI_Report_MMDDYY.zip` holding
//! one Excel workbook, a sheet (reported as `DeactivatedNPIs`) with a title row ("NPPES
//! Deactivated Records as of …"), then the header `NPI`, `NPPES Deactivation Date`, then one row
//! per NPI. Read here from the zip, the workbook itself, or the same two columns as CSV.
//!
//! The NPI may be text or a number, the date `MM/DD/YYYY` text or an Excel date (or a bare
//! serial number) since a re-saved workbook turns both into numbers. A bad row is reported with
//! its row number (as Excel shows it, 1-based; the CSV line) and the others are kept.
//!
//! Memory: the whole sheet (~330K two-cell rows, tens of MB) since calamine reads a range at once.

use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use calamine::{Data, ExcelDateTime, ExcelDateTimeType, Reader, Xlsx};
use chrono::NaiveDate;

use super::reader::{decode_text, RowError};
use super::row::DeactivationRow;

/// The sheet name CMS used in 2026; otherwise the first sheet is read.
pub const DEACTIVATION_SHEET: &str = "DeactivatedNPIs";

/// Rows before the header that may hold a title.
const MAX_LEADING_ROWS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum DeactivationError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the zip {path}: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("cannot read the workbook {path}: {source}")]
    Workbook {
        path: PathBuf,
        #[source]
        source: calamine::XlsxError,
    },
    #[error("cannot read the CSV {path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path} has no workbook (.xlsx) or CSV inside")]
    NothingInZip { path: PathBuf },
    #[error("{path}: no sheet in the workbook")]
    NoSheet { path: PathBuf },
    #[error("{path}: no header row with \"NPI\" and \"NPPES Deactivation Date\" in its first {MAX_LEADING_ROWS} rows")]
    NoHeader { path: PathBuf },
    #[error("{path} is not a .zip, .xlsx or .csv deactivation report")]
    Unsupported { path: PathBuf },
}

/// The report read: every data row, good or bad, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeactivationReport {
    /// The title above the header, e.g. "NPPES Deactivated Records as of Apr 13, 2026".
    pub title: Option<String>,
    pub rows: Vec<Result<DeactivationRow, RowError>>,
}

impl DeactivationReport {
    pub fn deactivations(&self) -> impl Iterator<Item = &DeactivationRow> {
        self.rows.iter().filter_map(|r| r.as_ref().ok())
    }

    pub fn errors(&self) -> impl Iterator<Item = &RowError> {
        self.rows.iter().filter_map(|r| r.as_ref().err())
    }
}

/// Reads a `.zip` (holding the workbook or a CSV), an `.xlsx` or a `.csv` report.
pub fn read_deactivation_report(path: &Path) -> Result<DeactivationReport, DeactivationError> {
    let io_error = |source| DeactivationError::Io {
        path: path.to_path_buf(),
        source,
    };
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("xlsx") => read_workbook(File::open(path).map_err(io_error)?, path),
        Some("csv") => read_csv(File::open(path).map_err(io_error)?, path),
        Some("zip") => {
            let zip_error = |source| DeactivationError::Zip {
                path: path.to_path_buf(),
                source,
            };
            let mut archive = zip::ZipArchive::new(File::open(path).map_err(io_error)?).map_err(zip_error)?;
            let wanted = |suffix: &str| {
                archive
                    .file_names()
                    .find(|n| n.to_ascii_lowercase().ends_with(suffix) && !n.starts_with("__MACOSX"))
                    .map(str::to_string)
            };
            let (name, is_workbook) = match (wanted(".xlsx"), wanted(".csv")) {
                (Some(name), _) => (name, true),
                (None, Some(name)) => (name, false),
                (None, None) => {
                    return Err(DeactivationError::NothingInZip {
                        path: path.to_path_buf(),
                    })
                }
            };
            let mut entry = archive.by_name(&name).map_err(zip_error)?;
            if is_workbook {
                // calamine needs Seek; the workbook is a few MB, so it is read into memory.
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes).map_err(io_error)?;
                read_workbook(Cursor::new(bytes), path)
            } else {
                read_csv(entry, path)
            }
        }
        _ => Err(DeactivationError::Unsupported {
            path: path.to_path_buf(),
        }),
    }
}

/// A cell of either form.
enum Cell {
    Text(String),
    Number(f64),
    Date(NaiveDate),
    Empty,
}

/// Reads an `.xlsx` workbook from memory or a file; `path` is for messages.
pub fn read_workbook<RS: Read + Seek>(workbook: RS, path: &Path) -> Result<DeactivationReport, DeactivationError> {
    let workbook_error = |source| DeactivationError::Workbook {
        path: path.to_path_buf(),
        source,
    };
    let mut workbook: Xlsx<RS> = Xlsx::new(workbook).map_err(workbook_error)?;
    let is_1904 = workbook.has_1904_epoch();
    let names = workbook.sheet_names();
    let sheet = names
        .iter()
        .find(|n| n.as_str() == DEACTIVATION_SHEET)
        .or_else(|| names.first())
        .ok_or_else(|| DeactivationError::NoSheet {
            path: path.to_path_buf(),
        })?
        .clone();
    let range = workbook.worksheet_range(&sheet).map_err(workbook_error)?;
    // Rows are numbered as Excel shows them, from the sheet's first row, not the range's.
    let first_row = range.start().map_or(0, |(row, _)| u64::from(row));
    let rows = range.rows().enumerate().map(|(i, cells)| {
        let cells = cells
            .iter()
            .map(|cell| match cell {
                Data::String(s) | Data::DateTimeIso(s) => Cell::Text(s.clone()),
                Data::Int(n) => Cell::Number(*n as f64),
                Data::Float(n) => Cell::Number(*n),
                Data::DateTime(date) => excel_date(date).map_or(Cell::Empty, Cell::Date),
                _ => Cell::Empty,
            })
            .collect();
        (first_row + i as u64 + 1, cells)
    });
    read_rows(rows, is_1904, path)
}

/// Reads the CSV form (with or without a title row above the header).
pub fn read_csv(csv: impl Read, path: &Path) -> Result<DeactivationReport, DeactivationError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv);
    let mut rows = Vec::new();
    for record in reader.byte_records() {
        let record = record.map_err(|source| DeactivationError::Csv {
            path: path.to_path_buf(),
            source,
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let cells = record.iter().map(|raw| Cell::Text(decode_text(raw))).collect();
        rows.push((line, cells));
    }
    read_rows(rows.into_iter(), false, path)
}

fn excel_date(date: &ExcelDateTime) -> Option<NaiveDate> {
    let (year, month, day, ..) = date.to_ymd_hms_milli();
    NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day))
}

fn read_rows(
    rows: impl Iterator<Item = (u64, Vec<Cell>)>,
    is_1904: bool,
    path: &Path,
) -> Result<DeactivationReport, DeactivationError> {
    let mut title = None;
    let mut columns = None;
    let mut out = Vec::new();
    for (index, (row, cells)) in rows.enumerate() {
        let Some((npi_column, date_column)) = columns else {
            if index >= MAX_LEADING_ROWS {
                break;
            }
            let names: Vec<String> = cells
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => t.split_whitespace().collect::<String>().to_ascii_lowercase(),
                    _ => String::new(),
                })
                .collect();
            let npi = names.iter().position(|n| n == "npi");
            let date = names.iter().position(|n| n == "nppesdeactivationdate");
            if let (Some(npi), Some(date)) = (npi, date) {
                columns = Some((npi, date));
            } else if title.is_none() {
                title = cells.iter().find_map(|c| match c {
                    Cell::Text(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                    _ => None,
                });
            }
            continue;
        };
        if cells
            .iter()
            .all(|c| matches!(c, Cell::Empty) || matches!(c, Cell::Text(t) if t.trim().is_empty()))
        {
            continue;
        }
        let cell = |i: usize| cells.get(i).unwrap_or(&Cell::Empty);
        out.push(
            deactivation_row(cell(npi_column), cell(date_column), is_1904)
                .map_err(|message| RowError { line: row, message }),
        );
    }
    if columns.is_none() {
        return Err(DeactivationError::NoHeader {
            path: path.to_path_buf(),
        });
    }
    Ok(DeactivationReport { title, rows: out })
}

fn deactivation_row(npi: &Cell, date: &Cell, is_1904: bool) -> Result<DeactivationRow, String> {
    let npi = match npi {
        Cell::Text(t) => t.trim().to_string(),
        // A workbook re-saved by Excel turns the NPI text into a number.
        Cell::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 1e10 => format!("{n:.0}"),
        Cell::Number(n) => n.to_string(),
        Cell::Date(d) => d.to_string(),
        Cell::Empty => String::new(),
    };
    if npi.len() != 10 || !npi.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("NPI {npi:?} is not 10 digits"));
    }
    let deactivation_date = match date {
        Cell::Empty => None,
        Cell::Text(t) if t.trim().is_empty() => None,
        Cell::Text(t) => Some(
            NaiveDate::parse_from_str(t.trim(), "%m/%d/%Y")
                // calamine gives ISO 8601 text for some date cells.
                .or_else(|_| NaiveDate::parse_from_str(t.trim().get(..10).unwrap_or_default(), "%Y-%m-%d"))
                .map_err(|_| format!("NPPES Deactivation Date {t:?} is not a MM/DD/YYYY date"))?,
        ),
        Cell::Date(d) => Some(*d),
        // A date cell without a date format is its bare serial number.
        Cell::Number(serial) if (1.0..2_958_466.0).contains(serial) => {
            excel_date(&ExcelDateTime::new(*serial, ExcelDateTimeType::DateTime, is_1904))
        }
        Cell::Number(n) => return Err(format!("NPPES Deactivation Date {n} is not an Excel date")),
    };
    Ok(DeactivationRow { npi, deactivation_date })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use rust_xlsxwriter::{ExcelDateTime as XlsxDate, Format, Workbook};

    use super::super::generate::generate_deactivation_report;
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    /// A workbook laid out as CMS's: title, header, rows; NPIs and dates in every form seen.
    fn workbook() -> Vec<u8> {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.set_name(DEACTIVATION_SHEET).unwrap();
        sheet
            .write_string(0, 0, "NPPES Deactivated Records as of Nov 10, 2025")
            .unwrap();
        sheet.write_string(1, 0, "NPI").unwrap();
        sheet.write_string(1, 1, "NPPES Deactivation Date").unwrap();
        sheet.write_string(2, 0, "1234567893").unwrap();
        sheet.write_string(2, 1, "06/15/2010").unwrap();
        sheet.write_number(3, 0, 1245319599.0).unwrap();
        let format = Format::new().set_num_format("mm/dd/yyyy");
        let excel_date = XlsxDate::from_ymd(2024, 2, 29).unwrap();
        sheet.write_datetime_with_format(3, 1, &excel_date, &format).unwrap();
        sheet.write_string(4, 0, "12AB").unwrap();
        sheet.write_string(4, 1, "01/01/2020").unwrap();
        // 45000 is 2023-03-15 in the 1900 date system.
        sheet.write_string(5, 0, "1679576722").unwrap();
        sheet.write_number(5, 1, 45000.0).unwrap();
        sheet.write_string(6, 0, "1003000126").unwrap();
        sheet.write_string(6, 1, "31/12/2020").unwrap();
        workbook.save_to_buffer().unwrap()
    }

    fn check_workbook_rows(report: &DeactivationReport) {
        assert_eq!(
            report.title.as_deref(),
            Some("NPPES Deactivated Records as of Nov 10, 2025")
        );
        let good: Vec<_> = report.deactivations().cloned().collect();
        assert_eq!(
            good,
            [
                DeactivationRow {
                    npi: "1234567893".into(),
                    deactivation_date: date(2010, 6, 15)
                },
                DeactivationRow {
                    npi: "1245319599".into(),
                    deactivation_date: date(2024, 2, 29)
                },
                DeactivationRow {
                    npi: "1679576722".into(),
                    deactivation_date: date(2023, 3, 15)
                },
            ]
        );
        let errors: Vec<u64> = report.errors().map(|e| e.line).collect();
        assert_eq!(errors, [5, 7]);
        assert!(report.errors().next().unwrap().message.contains("\"12AB\""));
    }

    #[test]
    fn reads_the_workbook_and_the_zip_holding_it() {
        let dir = tempfile::tempdir().unwrap();
        let xlsx = dir.path().join("NPPES Deactivated NPI Report 20251110.xlsx");
        std::fs::write(&xlsx, workbook()).unwrap();
        check_workbook_rows(&read_deactivation_report(&xlsx).unwrap());

        let zip_path = dir.path().join("NPPES_Deactivated_NPI_Report_111025.zip");
        let mut writer = zip::ZipWriter::new(File::create(&zip_path).unwrap());
        writer
            .start_file(
                "NPPES Deactivated NPI Report 20251110.xlsx",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
        writer.write_all(&workbook()).unwrap();
        writer.finish().unwrap();
        check_workbook_rows(&read_deactivation_report(&zip_path).unwrap());
    }

    #[test]
    fn reads_the_generated_csv_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deactivated.csv");
        let rows = [
            ("1234567893", date(2010, 6, 15).unwrap()),
            ("1245319599", date(2025, 1, 2).unwrap()),
        ];
        generate_deactivation_report(&path, &rows).unwrap();
        let report = read_deactivation_report(&path).unwrap();
        assert_eq!(report.title, None);
        let read: Vec<(String, Option<NaiveDate>)> = report
            .deactivations()
            .map(|r| (r.npi.clone(), r.deactivation_date))
            .collect();
        assert_eq!(
            read,
            [
                ("1234567893".to_string(), date(2010, 6, 15)),
                ("1245319599".to_string(), date(2025, 1, 2))
            ]
        );

        // A title row above the header, and a bad row reported by its line.
        std::fs::write(
            &path,
            "\"NPPES Deactivated Records as of 11/10/2025\"\n\"NPI\",\"NPPES Deactivation Date\"\n\"1234567893\",\"06/15/2010\"\n\"123\",\"06/15/2010\"\n\"1245319599\",\"\"\n",
        )
        .unwrap();
        let report = read_deactivation_report(&path).unwrap();
        assert_eq!(
            report.title.as_deref(),
            Some("NPPES Deactivated Records as of 11/10/2025")
        );
        assert_eq!(report.errors().map(|e| e.line).collect::<Vec<_>>(), [4]);
        assert_eq!(report.deactivations().count(), 2);
        assert_eq!(report.deactivations().last().unwrap().deactivation_date, None);
    }

    #[test]
    fn a_report_without_its_header_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.csv");
        std::fs::write(&path, "\"NPI\",\"Date\"\n\"1234567893\",\"06/15/2010\"\n").unwrap();
        assert!(matches!(
            read_deactivation_report(&path),
            Err(DeactivationError::NoHeader { .. })
        ));
        assert!(matches!(
            read_deactivation_report(&dir.path().join("report.txt")),
            Err(DeactivationError::Unsupported { .. })
        ));
    }
}
