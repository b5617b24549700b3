//! The SQL each warehouse understands: Databricks SQL (Delta tables) and PostgreSQL (the local
//! stand-in the tests run against, which has MERGE since version 15).

use std::fmt::Write as _;

use chrono::{Datelike, Timelike};

use super::table::{
    ColumnType, ColumnValues, DECIMAL_PRECISION, DECIMAL_SCALE, TableSpec, to_micros,
};

/// A warehouse's SQL dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Databricks SQL warehouse: backtick quoting, `STRING`, Delta tables, three-part names.
    Databricks,
    /// PostgreSQL: double-quote quoting, `TEXT`, `TIMESTAMPTZ`; the catalog is the database
    /// connected to, so names have two parts.
    Postgres,
}

/// Where the tables live: `catalog.schema` on Databricks, `schema` on PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Catalog (Unity Catalog), ignored by PostgreSQL.
    pub catalog: String,
    /// Schema (database on Databricks).
    pub schema: String,
}

impl Dialect {
    /// The dialect's name as `SYNC_DIALECT` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Databricks => "databricks",
            Self::Postgres => "postgres",
        }
    }

    /// Quotes an identifier (every name is quoted: `interval` is reserved in both dialects).
    pub fn quote(self, identifier: &str) -> String {
        match self {
            Self::Databricks => format!("`{}`", identifier.replace('`', "``")),
            Self::Postgres => format!("\"{}\"", identifier.replace('"', "\"\"")),
        }
    }

    /// The schema's qualified name.
    pub fn schema_name(self, ns: &Namespace) -> String {
        match self {
            Self::Databricks => format!("{}.{}", self.quote(&ns.catalog), self.quote(&ns.schema)),
            Self::Postgres => self.quote(&ns.schema),
        }
    }

    /// A table's qualified name.
    pub fn table_name(self, ns: &Namespace, table: &str) -> String {
        format!("{}.{}", self.schema_name(ns), self.quote(table))
    }

    /// The dialect's name for a column type.
    pub fn column_type(self, ty: ColumnType) -> String {
        match (self, ty) {
            (Self::Databricks, ColumnType::Text { .. }) => "STRING".to_owned(),
            (Self::Postgres, ColumnType::Text { .. }) => "TEXT".to_owned(),
            (_, ColumnType::BigInt) => "BIGINT".to_owned(),
            (Self::Databricks, ColumnType::Double) => "DOUBLE".to_owned(),
            (Self::Postgres, ColumnType::Double) => "DOUBLE PRECISION".to_owned(),
            (Self::Databricks, ColumnType::Decimal) => {
                format!("DECIMAL({DECIMAL_PRECISION},{DECIMAL_SCALE})")
            }
            // Unconstrained NUMERIC keeps the scale each value was sent with.
            (Self::Postgres, ColumnType::Decimal) => "NUMERIC".to_owned(),
            (Self::Databricks, ColumnType::Timestamp) => "TIMESTAMP".to_owned(),
            (Self::Postgres, ColumnType::Timestamp) => "TIMESTAMPTZ".to_owned(),
        }
    }

    /// Statements run once after connecting: timestamps are sent and read as UTC.
    pub fn session_setup(self) -> Vec<String> {
        vec!["SET TIME ZONE 'UTC'".to_owned()]
    }

    /// Whether several statements can be committed together (Databricks commits each one).
    pub fn supports_transactions(self) -> bool {
        matches!(self, Self::Postgres)
    }

    /// `CREATE SCHEMA IF NOT EXISTS …`.
    pub fn create_schema(self, ns: &Namespace) -> String {
        format!("CREATE SCHEMA IF NOT EXISTS {}", self.schema_name(ns))
    }

    /// `CREATE TABLE IF NOT EXISTS …` for the target table, or for its staging table (no key
    /// constraint, and unlogged on PostgreSQL: its rows are transient).
    pub fn create_table(self, ns: &Namespace, spec: &TableSpec, staging: bool) -> String {
        let name = if staging {
            spec.staging_name()
        } else {
            spec.name.to_string()
        };
        let mut columns: Vec<String> = spec
            .columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                format!("{} {}{null}", self.quote(&c.name), self.column_type(c.ty))
            })
            .collect();
        match self {
            Self::Databricks => format!(
                "CREATE TABLE IF NOT EXISTS {} ({}) USING DELTA",
                self.table_name(ns, &name),
                columns.join(", ")
            ),
            Self::Postgres => {
                if !staging {
                    columns.push(format!("PRIMARY KEY ({})", self.column_list(&spec.key)));
                }
                format!(
                    "CREATE {}TABLE IF NOT EXISTS {} ({})",
                    if staging { "UNLOGGED " } else { "" },
                    self.table_name(ns, &name),
                    columns.join(", ")
                )
            }
        }
    }

    /// A query returning no rows whose result columns are the table's columns.
    pub fn probe_columns(self, ns: &Namespace, table: &str) -> String {
        format!("SELECT * FROM {} WHERE 1 = 0", self.table_name(ns, table))
    }

    /// The parameterised insert into the staging table, one `?` per column.
    pub fn insert_staging(self, ns: &Namespace, spec: &TableSpec) -> String {
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table_name(ns, &spec.staging_name()),
            self.column_names(spec),
            vec!["?"; spec.columns.len()].join(", ")
        )
    }

    /// How a batch reaches this dialect's staging table.
    pub fn staging_load(self) -> StagingLoad {
        match self {
            Self::Databricks => StagingLoad::ParameterArrays,
            Self::Postgres => StagingLoad::ArrayLiterals,
        }
    }

    /// The insert of a whole batch into the staging table in one execution
    /// ([`StagingLoad::ArrayLiterals`], PostgreSQL): parameter `i` is column `i`'s values as one
    /// array literal ([`array_literal`]), and `unnest` turns the arrays back into rows.
    pub fn insert_staging_arrays(self, ns: &Namespace, spec: &TableSpec) -> String {
        let arrays: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("CAST(? AS {}[])", self.column_type(c.ty)))
            .collect();
        format!(
            "INSERT INTO {} ({}) SELECT * FROM unnest({})",
            self.table_name(ns, &spec.staging_name()),
            self.column_names(spec),
            arrays.join(", ")
        )
    }

    /// Merges the staging rows into the target: updates rows whose key exists, inserts the rest.
    pub fn merge(self, ns: &Namespace, spec: &TableSpec) -> String {
        let on: Vec<String> = spec
            .key
            .iter()
            .map(|k| format!("t.{q} = s.{q}", q = self.quote(k)))
            .collect();
        let set: Vec<String> = spec
            .columns
            .iter()
            .filter(|c| !spec.is_key(&c.name))
            .map(|c| format!("{q} = s.{q}", q = self.quote(&c.name)))
            .collect();
        let values: Vec<String> = spec
            .columns
            .iter()
            .map(|c| format!("s.{}", self.quote(&c.name)))
            .collect();
        format!(
            "MERGE INTO {} AS t USING {} AS s ON {} \
             WHEN MATCHED THEN UPDATE SET {} \
             WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
            self.table_name(ns, &spec.name),
            self.table_name(ns, &spec.staging_name()),
            on.join(" AND "),
            set.join(", "),
            self.column_names(spec),
            values.join(", ")
        )
    }

    /// A query of one row and one column: the newest `column` (a timestamp) of the table's
    /// rows whose `filter_column` equals the one parameter, in milliseconds since the Unix
    /// epoch; NULL when there are none.
    pub fn newest_millis(
        self,
        ns: &Namespace,
        spec: &TableSpec,
        column: &str,
        filter_column: &str,
    ) -> String {
        let newest = format!("MAX({})", self.quote(column));
        let millis = match self {
            Self::Databricks => format!("unix_millis({newest})"),
            Self::Postgres => format!("CAST(EXTRACT(EPOCH FROM {newest}) * 1000 AS BIGINT)"),
        };
        format!(
            "SELECT {millis} FROM {} WHERE {} = ?",
            self.table_name(ns, &spec.name),
            self.quote(filter_column)
        )
    }

    /// Empties the staging table.
    pub fn clear_staging(self, ns: &Namespace, spec: &TableSpec) -> String {
        format!(
            "TRUNCATE TABLE {}",
            self.table_name(ns, &spec.staging_name())
        )
    }

    /// The table's column names, quoted, in order.
    fn column_names(self, spec: &TableSpec) -> String {
        self.column_list(spec.columns.iter().map(|c| &c.name))
    }

    fn column_list<S: AsRef<str>>(self, names: impl IntoIterator<Item = S>) -> String {
        names
            .into_iter()
            .map(|n| self.quote(n.as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How rows are inserted into a staging table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StagingLoad {
    /// One parameterised single-row INSERT executed with odbc-api's columnar parameter arrays
    /// (Databricks' driver sends the array in one request).
    ParameterArrays,
    /// One INSERT … SELECT FROM unnest(…) per batch, each column sent as a single array-literal
    /// parameter: the PostgreSQL ODBC driver executes parameter arrays one row at a time, which
    /// costs a server round of parse, plan and execute per row.
    ArrayLiterals,
}

/// A column's values as a PostgreSQL array literal (`{"a",NULL,"b"}`), appended to `out`:
/// text is quoted and escaped, decimals keep their scale, timestamps are UTC microseconds.
pub fn array_literal(values: &ColumnValues, out: &mut String) {
    fn push_all<T>(out: &mut String, values: &[Option<T>], mut push: impl FnMut(&mut String, &T)) {
        out.push('{');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match value {
                Some(value) => push(out, value),
                None => out.push_str("NULL"),
            }
        }
        out.push('}');
    }
    // `write!` into a String cannot fail.
    match values {
        ColumnValues::Text(v) => push_all(out, v, |out, s| {
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }),
        ColumnValues::BigInt(v) => push_all(out, v, |out, n| {
            let _ = write!(out, "{n}");
        }),
        // Rust prints the shortest digits that read back as the same double, never an exponent.
        ColumnValues::Double(v) => push_all(out, v, |out, x| {
            let _ = write!(out, "{x}");
        }),
        ColumnValues::Decimal(v) => push_all(out, v, |out, d| {
            let _ = write!(out, "{d}");
        }),
        ColumnValues::Timestamp(v) => push_all(out, v, |out, t| {
            let t = to_micros(*t);
            let _ = write!(
                out,
                "\"{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00\"",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.nanosecond() / 1_000
            );
        }),
    }
}

/// `COPY INTO` a table's staging table from Parquet files under `source_dir` (Databricks only):
/// each column is taken from `select[i]`, an expression over the file's columns, so a lake
/// schema that differs from the table's is cast on the way in.
///
/// `force` reloads files already loaded: the export job rewrites a day's file in place under the
/// same name, which `COPY INTO`'s load tracking would otherwise skip; the MERGE that follows
/// makes reloading idempotent.
pub fn copy_into_staging(
    ns: &Namespace,
    spec: &TableSpec,
    source_dir: &str,
    select: &[String],
    files: &[String],
) -> String {
    let dialect = Dialect::Databricks;
    let columns: Vec<String> = spec
        .columns
        .iter()
        .zip(select)
        .map(|(c, expr)| format!("{expr} AS {}", dialect.quote(&c.name)))
        .collect();
    let files: Vec<String> = files
        .iter()
        .map(|f| format!("'{}'", f.replace('\'', "''")))
        .collect();
    format!(
        "COPY INTO {} FROM (SELECT {} FROM '{}') FILEFORMAT = PARQUET FILES = ({}) \
         COPY_OPTIONS ('force' = 'true')",
        dialect.table_name(ns, &spec.staging_name()),
        columns.join(", "),
        source_dir.trim_end_matches('/').replace('\'', "''"),
        files.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::table::ColumnSpec;
    use super::*;

    fn spec() -> TableSpec {
        let columns = vec![
            ColumnSpec::text("interval", 8, false),
            ColumnSpec::new("price", ColumnType::Decimal, true),
            ColumnSpec::new("at", ColumnType::Timestamp, false),
        ];
        TableSpec::new("things", columns, &["interval", "at"])
    }

    fn ns() -> Namespace {
        Namespace {
            catalog: "main".into(),
            schema: "pricecast".into(),
        }
    }

    #[test]
    fn identifiers_are_quoted_per_dialect() {
        assert_eq!(Dialect::Databricks.quote("interval"), "`interval`");
        assert_eq!(Dialect::Postgres.quote("interval"), "\"interval\"");
        assert_eq!(Dialect::Databricks.quote("a`b"), "`a``b`");
        assert_eq!(Dialect::Postgres.quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            Dialect::Databricks.table_name(&ns(), "things"),
            "`main`.`pricecast`.`things`"
        );
        assert_eq!(
            Dialect::Postgres.table_name(&ns(), "things"),
            "\"pricecast\".\"things\""
        );
    }

    #[test]
    fn ddl_uses_delta_on_databricks_and_keys_on_postgres() {
        assert_eq!(
            Dialect::Databricks.create_table(&ns(), &spec(), false),
            "CREATE TABLE IF NOT EXISTS `main`.`pricecast`.`things` (`interval` STRING NOT NULL, \
             `price` DECIMAL(38,10), `at` TIMESTAMP NOT NULL) USING DELTA"
        );
        assert_eq!(
            Dialect::Postgres.create_table(&ns(), &spec(), false),
            "CREATE TABLE IF NOT EXISTS \"pricecast\".\"things\" (\"interval\" TEXT NOT NULL, \
             \"price\" NUMERIC, \"at\" TIMESTAMPTZ NOT NULL, PRIMARY KEY (\"interval\", \"at\"))"
        );
        assert!(
            Dialect::Postgres
                .create_table(&ns(), &spec(), true)
                .starts_with(
                    "CREATE UNLOGGED TABLE IF NOT EXISTS \"pricecast\".\"things_staging\""
                )
        );
        assert_eq!(
            Dialect::Databricks.create_schema(&ns()),
            "CREATE SCHEMA IF NOT EXISTS `main`.`pricecast`"
        );
    }

    #[test]
    fn merge_matches_on_the_key_and_updates_the_rest() {
        assert_eq!(
            Dialect::Databricks.merge(&ns(), &spec()),
            "MERGE INTO `main`.`pricecast`.`things` AS t USING `main`.`pricecast`.`things_staging` AS s \
             ON t.`interval` = s.`interval` AND t.`at` = s.`at` \
             WHEN MATCHED THEN UPDATE SET `price` = s.`price` \
             WHEN NOT MATCHED THEN INSERT (`interval`, `price`, `at`) \
             VALUES (s.`interval`, s.`price`, s.`at`)"
        );
        assert_eq!(
            Dialect::Postgres.insert_staging(&ns(), &spec()),
            "INSERT INTO \"pricecast\".\"things_staging\" (\"interval\", \"price\", \"at\") VALUES (?, ?, ?)"
        );
        assert_eq!(
            Dialect::Postgres.clear_staging(&ns(), &spec()),
            "TRUNCATE TABLE \"pricecast\".\"things_staging\""
        );
    }

    #[test]
    fn postgres_stages_a_batch_as_unnested_arrays_and_databricks_as_parameter_arrays() {
        assert_eq!(
            Dialect::Postgres.insert_staging_arrays(&ns(), &spec()),
            "INSERT INTO \"pricecast\".\"things_staging\" (\"interval\", \"price\", \"at\") \
             SELECT * FROM unnest(CAST(? AS TEXT[]), CAST(? AS NUMERIC[]), CAST(? AS TIMESTAMPTZ[]))"
        );
        assert_eq!(Dialect::Postgres.staging_load(), StagingLoad::ArrayLiterals);
        assert_eq!(
            Dialect::Databricks.staging_load(),
            StagingLoad::ParameterArrays
        );
    }

    #[test]
    fn array_literals_quote_text_and_keep_nulls_scales_and_microseconds() {
        let literal = |values: ColumnValues| {
            let mut out = String::new();
            array_literal(&values, &mut out);
            out
        };
        assert_eq!(
            literal(ColumnValues::Text(vec![
                Some("1h".into()),
                None,
                Some("a\"b\\c,{d}".into()),
                Some("NULL".into()),
            ])),
            r#"{"1h",NULL,"a\"b\\c,{d}","NULL"}"#
        );
        assert_eq!(
            literal(ColumnValues::BigInt(vec![Some(-5), None])),
            "{-5,NULL}"
        );
        assert_eq!(
            literal(ColumnValues::Double(vec![Some(0.1), Some(-2.5e-7), None])),
            "{0.1,-0.00000025,NULL}"
        );
        let d = |s: &str| s.parse::<rust_decimal::Decimal>().expect("decimal");
        assert_eq!(
            literal(ColumnValues::Decimal(vec![Some(d("94000.10000000")), None])),
            "{94000.10000000,NULL}"
        );
        let t = "2025-04-28T13:59:59.999123456Z".parse().expect("time");
        assert_eq!(
            literal(ColumnValues::Timestamp(vec![Some(t)])),
            r#"{"2025-04-28 13:59:59.999123+00"}"#
        );
        assert_eq!(literal(ColumnValues::Timestamp(vec![])), "{}");
    }

    #[test]
    fn the_newest_timestamp_is_read_as_epoch_milliseconds() {
        assert_eq!(
            Dialect::Databricks.newest_millis(&ns(), &spec(), "at", "interval"),
            "SELECT unix_millis(MAX(`at`)) FROM `main`.`pricecast`.`things` WHERE `interval` = ?"
        );
        assert_eq!(
            Dialect::Postgres.newest_millis(&ns(), &spec(), "at", "interval"),
            "SELECT CAST(EXTRACT(EPOCH FROM MAX(\"at\")) * 1000 AS BIGINT) FROM \"pricecast\".\"things\" WHERE \"interval\" = ?"
        );
        assert_eq!(
            Dialect::Databricks.column_type(ColumnType::Double),
            "DOUBLE"
        );
        assert_eq!(
            Dialect::Postgres.column_type(ColumnType::Double),
            "DOUBLE PRECISION"
        );
    }

    #[test]
    fn copy_into_reads_the_listed_parquet_files() {
        let select = [
            "CAST(interval AS STRING)".to_owned(),
            "price".into(),
            "at".into(),
        ];
        let sql = copy_into_staging(
            &ns(),
            &spec(),
            "s3://lake/prices/candles/symbol=BTCUSDT/interval=1h/",
            &select,
            &["date=2025-04-28/part-0.parquet".to_owned()],
        );
        assert_eq!(
            sql,
            "COPY INTO `main`.`pricecast`.`things_staging` FROM (SELECT CAST(interval AS STRING) \
             AS `interval`, price AS `price`, at AS `at` FROM \
             's3://lake/prices/candles/symbol=BTCUSDT/interval=1h') FILEFORMAT = PARQUET \
             FILES = ('date=2025-04-28/part-0.parquet') COPY_OPTIONS ('force' = 'true')"
        );
    }
}
