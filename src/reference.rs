//! Reference tables: `staff`, `patients` and `encounters`, loaded from the
//! CSV files DESIGN.md describes and registered in every SQL session, so rules
//! can tell a colleague's chart from a stranger's and a treatment relationship
//! from snooping.
//!
//! The files are small (a hospital's workforce, its patients, its encounters),
//! so they are read whole into memory. A bad file stops the command with the
//! file, line and column at fault: detection on half-read reference data would
//! raise false alerts (or miss true ones) silently.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::functions::care::Care;
use crate::ingest::timestamp::{days_from_civil, parse_rfc3339};
use crate::schema;

/// The type of a reference column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Text; empty is null when the column is optional.
    Text,
    /// `YYYY-MM-DD`.
    Date,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`); empty is false.
    Bool,
    /// RFC 3339 with a zone.
    Time,
}

/// One column: name, type, whether it may be empty.
type Col = (&'static str, Kind, bool);

/// The three tables: file stem (also the table name) and columns, in file order.
const TABLES: &[(&str, &[Col])] = &[
    (
        "staff",
        &[
            ("user_id", Kind::Text, false),
            ("first_name", Kind::Text, true),
            ("last_name", Kind::Text, true),
            ("role", Kind::Text, true),
            ("department", Kind::Text, true),
            ("address", Kind::Text, true),
            ("zip", Kind::Text, true),
            ("hire_date", Kind::Date, true),
            ("termination_date", Kind::Date, true),
        ],
    ),
    (
        "patients",
        &[
            ("patient_id", Kind::Text, false),
            ("first_name", Kind::Text, true),
            ("last_name", Kind::Text, true),
            ("birth_date", Kind::Date, true),
            ("address", Kind::Text, true),
            ("zip", Kind::Text, true),
            ("deceased_date", Kind::Date, true),
            ("vip", Kind::Bool, true),
            ("employee_user_id", Kind::Text, true),
        ],
    ),
    (
        "encounters",
        &[
            ("encounter_id", Kind::Text, true),
            ("patient_id", Kind::Text, false),
            ("user_id", Kind::Text, true),
            ("department", Kind::Text, true),
            ("start_ts", Kind::Time, false),
            ("end_ts", Kind::Time, true),
        ],
    ),
];

/// Names of the reference tables.
pub const NAMES: [&str; 3] = ["staff", "patients", "encounters"];

enum Builder {
    Text(StringBuilder),
    Date(Date32Builder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
}

fn schema_of(cols: &[Col]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter()
            .map(|(name, kind, optional)| {
                let t = match kind {
                    Kind::Text => DataType::Utf8,
                    Kind::Date => DataType::Date32,
                    Kind::Bool => DataType::Boolean,
                    Kind::Time => schema::ts_type(),
                };
                Field::new(*name, t, *optional)
            })
            .collect::<Vec<_>>(),
    ))
}

fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    i32::try_from(days_from_civil(i64::from(y), m, d)).ok()
}

/// Reads one reference CSV into a batch of its table's schema.
fn read_table(path: &Path, cols: &[Col]) -> Result<RecordBatch> {
    let bad = |line: u64, reason: String| Error::Input {
        input: format!("{}:{line}", path.display()),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_path(path)
        .map_err(|e| Error::Input {
            input: path.display().to_string(),
            reason: match e.kind() {
                csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                    "reference file not found: --ref must name a folder holding staff.csv, \
                     patients.csv and encounters.csv (emrwatch gen writes them to OUT/ref)"
                        .to_string()
                }
                _ => e.to_string(),
            },
        })?;
    let header = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    let expected: Vec<&str> = cols.iter().map(|c| c.0).collect();
    let got: Vec<&str> = header.iter().map(str::trim).collect();
    if got != expected {
        return Err(bad(
            1,
            format!(
                "header is `{}`, expected `{}` (columns in this order)",
                got.join(","),
                expected.join(",")
            ),
        ));
    }
    let mut builders: Vec<Builder> = cols
        .iter()
        .map(|(_, kind, _)| match kind {
            Kind::Text => Builder::Text(StringBuilder::new()),
            Kind::Date => Builder::Date(Date32Builder::new()),
            Kind::Bool => Builder::Bool(BooleanBuilder::new()),
            Kind::Time => Builder::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
        })
        .collect();
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(line, e.to_string())
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        for ((name, kind, optional), (b, value)) in
            cols.iter().zip(builders.iter_mut().zip(record.iter()))
        {
            let v = value.trim();
            if v.is_empty() {
                if !optional {
                    return Err(bad(line, format!("column {name} is empty; it is required")));
                }
                match b {
                    Builder::Text(b) => b.append_null(),
                    Builder::Date(b) => b.append_null(),
                    Builder::Bool(b) => b.append_value(false),
                    Builder::Time(b) => b.append_null(),
                }
                continue;
            }
            let invalid = |what: &str| {
                bad(
                    line,
                    format!(
                        "column {name}: {:?} is not {what}",
                        crate::ingest::json::clip(v)
                    ),
                )
            };
            match (b, kind) {
                (Builder::Text(b), _) => b.append_value(v),
                (Builder::Date(b), _) => {
                    b.append_value(parse_date(v).ok_or_else(|| invalid("a date (YYYY-MM-DD)"))?)
                }
                (Builder::Bool(b), _) => b.append_value(match v.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "y" | "t" => true,
                    "false" | "0" | "no" | "n" | "f" => false,
                    _ => return Err(invalid("true or false")),
                }),
                (Builder::Time(b), _) => b.append_value(parse_rfc3339(v).ok_or_else(|| {
                    invalid("an RFC 3339 time with a zone (2026-11-01T08:00:00Z)")
                })?),
            }
        }
    }
    let columns: Vec<ArrayRef> = builders
        .into_iter()
        .map(|b| -> ArrayRef {
            match b {
                Builder::Text(mut b) => Arc::new(b.finish()),
                Builder::Date(mut b) => Arc::new(b.finish()),
                Builder::Bool(mut b) => Arc::new(b.finish()),
                Builder::Time(mut b) => Arc::new(b.finish()),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema_of(cols), columns)?)
}

/// The reference tables read from `dir` (`staff.csv`, `patients.csv`, `encounters.csv`).
#[derive(Debug, Clone)]
pub struct Reference {
    /// Where they were read from.
    pub dir: PathBuf,
    /// (table name, rows).
    pub tables: Vec<(&'static str, RecordBatch)>,
    /// `care_relationship` over `staff` and `encounters`: every session
    /// these tables are registered in shares its index.
    care: Care,
}

impl Reference {
    /// Reads the three files, each on a thread of its own (the encounters
    /// are most of the time); the first problem found, in table order, is
    /// the error.
    pub fn load(dir: &Path) -> Result<Self> {
        let tables = std::thread::scope(|s| {
            let readers: Vec<_> = TABLES
                .iter()
                .map(|(name, cols)| {
                    let path = dir.join(format!("{name}.csv"));
                    (*name, s.spawn(move || read_table(&path, cols)))
                })
                .collect();
            readers
                .into_iter()
                .map(|(name, r)| {
                    let batch = r.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                    Ok((name, batch))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(Self::of(dir.to_path_buf(), tables))
    }

    fn of(dir: PathBuf, tables: Vec<(&'static str, RecordBatch)>) -> Self {
        let table = |name: &str| {
            tables
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.clone())
                .expect("every reference table is loaded")
        };
        let care = Care::new(table("staff"), table("encounters"));
        Self { dir, tables, care }
    }

    /// Prepares what `care_relationship` looks accesses up in (an index of
    /// the encounters), so that its first call does not build it. Detect
    /// calls this on the thread that read the tables when a rule or view
    /// calls the function.
    pub fn prepare_care(&self) -> Result<()> {
        Ok(self.care.prepare()?)
    }

    /// Empty tables with the right columns, for sessions without `--ref`:
    /// rules then find no relationship and say so in their results.
    pub fn empty() -> Self {
        let tables = TABLES
            .iter()
            .map(|(name, cols)| (*name, RecordBatch::new_empty(schema_of(cols))))
            .collect();
        Self::of(PathBuf::new(), tables)
    }

    /// Registers every table in `ctx` under its name (in place of any
    /// registered before), and `care_relationship` over them.
    pub fn register(&self, ctx: &SessionContext) -> Result<()> {
        for (name, batch) in &self.tables {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
            // Replacing the empty tables a session checked its rules with.
            ctx.deregister_table(*name)?;
            ctx.register_table(*name, Arc::new(table))?;
        }
        ctx.register_udf(self.care.udf());
        Ok(())
    }

    /// Rows of table `name`.
    pub fn rows(&self, name: &str) -> usize {
        self.tables
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, b)| b.num_rows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn fixture() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "staff.csv",
            "user_id,first_name,last_name,role,department,address,zip,hire_date,termination_date\n\
             u1,ANA,GARCIA,nurse,icu,1 OAK ST,60622,2020-01-02,\n",
        );
        write(
            d.path(),
            "patients.csv",
            "patient_id,first_name,last_name,birth_date,address,zip,deceased_date,vip,employee_user_id\n\
             p1,LUIS,GARCIA,1970-05-06,2 OAK ST,60622,,true,\n",
        );
        write(
            d.path(),
            "encounters.csv",
            "encounter_id,patient_id,user_id,department,start_ts,end_ts\n\
             e1,p1,u1,icu,2026-11-01T08:00:00Z,\n",
        );
        d
    }

    #[test]
    fn loads_the_three_tables_with_types() {
        let d = fixture();
        let r = Reference::load(d.path()).unwrap();
        assert_eq!(r.rows("staff"), 1);
        assert_eq!(r.rows("patients"), 1);
        assert_eq!(r.rows("encounters"), 1);
        let (_, enc) = &r.tables[2];
        assert_eq!(enc.schema().field(4).data_type(), &schema::ts_type());
        assert_eq!(enc.column(5).null_count(), 1);
        let (_, pat) = &r.tables[1];
        assert_eq!(pat.schema().field(7).data_type(), &DataType::Boolean);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let d = fixture();
        write(
            d.path(),
            "patients.csv",
            "patient_id,first_name,last_name,birth_date,address,zip,deceased_date,vip,employee_user_id\n\
             p1,LUIS,GARCIA,1970-05-06,2 OAK ST,60622,,true,\n\
             p2,EVA,LOPEZ,1970-13-06,3 OAK ST,60622,,false,\n",
        );
        let e = Reference::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("patients.csv:3"), "{e}");
        assert!(e.contains("birth_date") && e.contains("1970-13-06"), "{e}");

        write(d.path(), "encounters.csv", "patient_id,encounter_id\n");
        let e = Reference::load(d.path()).unwrap_err().to_string();
        // staff and patients load first; the encounters header is wrong.
        assert!(e.contains("patients.csv:3"), "{e}");
        std::fs::remove_file(d.path().join("staff.csv")).unwrap();
        let e = Reference::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("staff.csv") && e.contains("not found"), "{e}");
    }

    #[test]
    fn a_wrong_header_is_named() {
        let d = fixture();
        write(
            d.path(),
            "encounters.csv",
            "patient_id,encounter_id\np1,e1\n",
        );
        let e = Reference::load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("encounters.csv:1") && e.contains("expected"),
            "{e}"
        );
    }
}
