//! A Data Dissemination bundle as CMS publishes it (the monthly or weekly zip) or as extracted
//! into a folder: finds the four data files and opens each as a stream. Zip entries are
//! decompressed while read, never extracted whole (the monthly `npidata_pfile` is ~11 GB).

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use zip::read::ZipFile;
use zip::ZipArchive;

/// The four data files of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `npidata_pfile_*.csv`: one row per NPI.
    Providers,
    /// `pl_pfile_*.csv`: secondary practice locations.
    SecondaryLocations,
    /// `othername_pfile_*.csv`: other organization names.
    OtherNames,
    /// `endpoint_pfile_*.csv`: electronic endpoints.
    Endpoints,
}

impl FileKind {
    pub const ALL: [FileKind; 4] = [
        FileKind::Providers,
        FileKind::SecondaryLocations,
        FileKind::OtherNames,
        FileKind::Endpoints,
    ];

    /// The file name prefix CMS uses.
    pub fn prefix(self) -> &'static str {
        match self {
            FileKind::Providers => "npidata_pfile_",
            FileKind::SecondaryLocations => "pl_pfile_",
            FileKind::OtherNames => "othername_pfile_",
            FileKind::Endpoints => "endpoint_pfile_",
        }
    }

    /// The kind of a data file by its name; None for anything else, including the
    /// `*_fileheader.csv` companions (header row only) and the PDFs.
    pub fn of_file_name(name: &str) -> Option<FileKind> {
        let lower = name.to_ascii_lowercase();
        if !lower.ends_with(".csv") || lower.ends_with("_fileheader.csv") {
            return None;
        }
        FileKind::ALL.into_iter().find(|k| lower.starts_with(k.prefix()))
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix().trim_end_matches('_'))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the zip {path}: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{path} is neither a folder nor a .zip")]
    NotABundle { path: PathBuf },
    #[error("{path} holds two {kind} files, {first} and {second}: cannot tell which to read")]
    Ambiguous {
        path: PathBuf,
        kind: FileKind,
        first: String,
        second: String,
    },
    #[error("{path} has no {kind} file")]
    Missing { path: PathBuf, kind: FileKind },
}

/// One data file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub kind: FileKind,
    /// The file name (without any folder inside the zip).
    pub name: String,
    /// Bytes on disk: the deflated size in a zip, the file size in a folder.
    pub compressed_size: u64,
    /// Bytes of CSV, the denominator of `BulkReader::byte_offset` for progress.
    pub uncompressed_size: u64,
    location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Path(PathBuf),
    ZipIndex(usize),
}

enum Bundle {
    Folder,
    Zip(ZipArchive<BufReader<File>>),
}

/// A monthly/weekly bundle, zipped or extracted.
pub struct DisseminationSource {
    path: PathBuf,
    bundle: Bundle,
    files: Vec<SourceFile>,
}

impl DisseminationSource {
    /// Opens a `.zip` or a folder and finds the data files in it (at any depth inside the zip;
    /// directly in the folder).
    pub fn open(path: &Path) -> Result<DisseminationSource, SourceError> {
        let io_error = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(io_error)?;
        let mut found = Vec::new();
        let bundle = if metadata.is_dir() {
            for entry in std::fs::read_dir(path).map_err(io_error)? {
                let entry = entry.map_err(io_error)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(kind) = FileKind::of_file_name(&name) else {
                    continue;
                };
                let size = entry.metadata().map_err(io_error)?.len();
                found.push(SourceFile {
                    kind,
                    name,
                    compressed_size: size,
                    uncompressed_size: size,
                    location: Location::Path(entry.path()),
                });
            }
            Bundle::Folder
        } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
            let zip_error = |source| SourceError::Zip {
                path: path.to_path_buf(),
                source,
            };
            let file = File::open(path).map_err(io_error)?;
            let mut archive = ZipArchive::new(BufReader::new(file)).map_err(zip_error)?;
            for index in 0..archive.len() {
                // Raw access reads only the headers, no decompression.
                let entry = archive.by_index_raw(index).map_err(zip_error)?;
                if !entry.is_file() {
                    continue;
                }
                let name = entry.name().rsplit(['/', '\\']).next().unwrap_or_default().to_string();
                let Some(kind) = FileKind::of_file_name(&name) else {
                    continue;
                };
                found.push(SourceFile {
                    kind,
                    name,
                    compressed_size: entry.compressed_size(),
                    uncompressed_size: entry.size(),
                    location: Location::ZipIndex(index),
                });
            }
            Bundle::Zip(archive)
        } else {
            return Err(SourceError::NotABundle {
                path: path.to_path_buf(),
            });
        };
        found.sort_by(|a, b| a.name.cmp(&b.name));
        for kind in FileKind::ALL {
            let mut same = found.iter().filter(|f| f.kind == kind);
            if let (Some(first), Some(second)) = (same.next(), same.next()) {
                return Err(SourceError::Ambiguous {
                    path: path.to_path_buf(),
                    kind,
                    first: first.name.clone(),
                    second: second.name.clone(),
                });
            }
        }
        Ok(DisseminationSource {
            path: path.to_path_buf(),
            bundle,
            files: found,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data files found, by name.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    pub fn file(&self, kind: FileKind) -> Option<&SourceFile> {
        self.files.iter().find(|f| f.kind == kind)
    }

    /// Opens one file as a stream. A zip entry is inflated as it is read; the stream borrows the
    /// source, so read the files one after another (or open the source twice).
    pub fn stream(&mut self, kind: FileKind) -> Result<SourceStream<'_>, SourceError> {
        let file = self
            .files
            .iter()
            .find(|f| f.kind == kind)
            .ok_or_else(|| SourceError::Missing {
                path: self.path.clone(),
                kind,
            })?;
        match (&file.location, &mut self.bundle) {
            (Location::Path(path), _) => {
                let opened = File::open(path).map_err(|source| SourceError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok(SourceStream {
                    name: file.name.clone(),
                    inner: StreamInner::File(opened),
                })
            }
            (Location::ZipIndex(index), Bundle::Zip(archive)) => {
                let entry = archive.by_index(*index).map_err(|source| SourceError::Zip {
                    path: self.path.clone(),
                    source,
                })?;
                Ok(SourceStream {
                    name: file.name.clone(),
                    inner: StreamInner::Zip(Box::new(entry)),
                })
            }
            (Location::ZipIndex(_), Bundle::Folder) => unreachable!("zip entries come from a zip"),
        }
    }
}

/// One data file being read.
pub struct SourceStream<'a> {
    name: String,
    inner: StreamInner<'a>,
}

enum StreamInner<'a> {
    File(File),
    Zip(Box<ZipFile<'a, BufReader<File>>>),
}

impl SourceStream<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Read for SourceStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            StreamInner::File(file) => file.read(buf),
            StreamInner::Zip(entry) => entry.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::super::generate::{generate, GenerateOptions};
    use super::super::reader::{ProviderReader, SecondaryLocationReader};
    use super::*;

    /// Zips every file of `dir` at the root, as CMS's bundles are.
    fn zip_folder(dir: &Path, zip_path: &Path) {
        let mut writer = zip::ZipWriter::new(File::create(zip_path).unwrap());
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            writer
                .start_file(path.file_name().unwrap().to_str().unwrap(), options)
                .unwrap();
            writer.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
        writer.finish().unwrap();
    }

    #[test]
    fn kinds_by_file_name() {
        assert_eq!(
            FileKind::of_file_name("npidata_pfile_20050523-20250608.csv"),
            Some(FileKind::Providers)
        );
        assert_eq!(
            FileKind::of_file_name("pl_pfile_20240304-20240310.csv"),
            Some(FileKind::SecondaryLocations)
        );
        assert_eq!(
            FileKind::of_file_name("npidata_pfile_20050523-20250608_fileheader.csv"),
            None
        );
        assert_eq!(FileKind::of_file_name("NPPES_Data_Dissemination_Readme.pdf"), None);
    }

    #[test]
    fn a_zip_and_its_folder_give_the_same_rows() {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("NPPES_Data_Dissemination_November_2025");
        let options = GenerateOptions {
            rows: 500,
            seed: 3,
            multiline_fraction: 0.02,
            bad_row_every: Some(100),
            ..GenerateOptions::default()
        };
        generate(&folder, &options).unwrap();
        std::fs::write(folder.join("NPPES_Data_Dissemination_Readme.pdf"), b"%PDF-1.4").unwrap();
        let zip_path = root.path().join("NPPES_Data_Dissemination_November_2025.zip");
        zip_folder(&folder, &zip_path);

        let mut from_folder = DisseminationSource::open(&folder).unwrap();
        let mut from_zip = DisseminationSource::open(&zip_path).unwrap();
        let names = |s: &DisseminationSource| s.files().iter().map(|f| (f.kind, f.name.clone())).collect::<Vec<_>>();
        assert_eq!(names(&from_folder).len(), 4);
        assert_eq!(names(&from_folder), names(&from_zip));
        let npidata = from_zip.file(FileKind::Providers).unwrap().clone();
        assert_eq!(npidata.name, "npidata_pfile_20050523-20251109.csv");
        assert_eq!(
            npidata.uncompressed_size,
            from_folder.file(FileKind::Providers).unwrap().uncompressed_size
        );
        assert!(npidata.compressed_size < npidata.uncompressed_size / 3);

        let rows = |source: &mut DisseminationSource| {
            let stream = source.stream(FileKind::Providers).unwrap();
            assert_eq!(stream.name(), "npidata_pfile_20050523-20251109.csv");
            let rows: Vec<_> = ProviderReader::new(stream).unwrap().map(|r| r.unwrap()).collect();
            rows
        };
        let zipped = rows(&mut from_zip);
        assert_eq!(zipped.len(), 500);
        assert_eq!(zipped.iter().filter(|r| r.is_err()).count(), 5);
        assert_eq!(zipped, rows(&mut from_folder));

        let locations = |source: &mut DisseminationSource| {
            let stream = source.stream(FileKind::SecondaryLocations).unwrap();
            let rows: Vec<_> = SecondaryLocationReader::new(stream)
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows
        };
        let zipped = locations(&mut from_zip);
        assert!(!zipped.is_empty());
        assert_eq!(zipped, locations(&mut from_folder));
    }

    #[test]
    fn missing_and_ambiguous_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("npidata_pfile_20240304-20240310.csv"), "\"NPI\"\n").unwrap();
        let mut source = DisseminationSource::open(dir.path()).unwrap();
        assert!(matches!(
            source.stream(FileKind::Endpoints),
            Err(SourceError::Missing {
                kind: FileKind::Endpoints,
                ..
            })
        ));
        std::fs::write(dir.path().join("npidata_pfile_20240311-20240317.csv"), "\"NPI\"\n").unwrap();
        let error = DisseminationSource::open(dir.path()).err().unwrap();
        assert!(
            matches!(
                error,
                SourceError::Ambiguous {
                    kind: FileKind::Providers,
                    ..
                }
            ),
            "{error}"
        );
        let not_a_bundle = dir.path().join("npidata_pfile_20240304-20240310.csv");
        assert!(matches!(
            DisseminationSource::open(&not_a_bundle),
            Err(SourceError::NotABundle { .. })
        ));
    }
}
