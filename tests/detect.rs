//! Detection rules on tiny inline tables: for each rule a positive case that
//! alerts and its benign look-alike that must not; then the runner (broken
//! rules, re-runs, ranges) and the whole loop on `emrwatch gen` output.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use emrwatch::detect::rule::{self, Rule, View};
use emrwatch::detect::{self, Alert, Range};
use emrwatch::reference::Reference;
use emrwatch::{functions, schema};

use crate::common::*;

const STAFF: &str =
    "user_id,first_name,last_name,role,department,address,zip,hire_date,termination_date
u1,ANA,GARCIA,nurse,icu,10 OAK ST,60622,2020-01-01,
u2,BEN,SMITH,physician,emergency,20 ELM ST,60601,2020-01-01,
u3,CARA,JONES,him,him,30 PINE RD,60602,2020-01-01,
u4,DAN,KIM,nurse,icu,40 BIRCH WAY,60605,2020-01-01,2026-10-15
u5,EVE,NGUYEN,nurse,icu,50 LAKE DR,60607,2020-01-01,
u6,FAY,LEE,nurse,icu,60 LAKE DR,60607,2020-01-01,
u7,GUS,PARK,nurse,icu,70 LAKE DR,60607,2020-01-01,
";

const PATIENTS: &str =
    "patient_id,first_name,last_name,birth_date,address,zip,deceased_date,vip,employee_user_id
p_self,ANA,GARCIA,1980-01-01,10 OAK ST,60622,,false,u1
p_fam,LUIS,GARCIA,1950-01-01,99 RIVER RD,60610,,false,
p_nbr,OLGA,BROWN,1960-01-01,12 OAK ST,60622,,false,
p_cow,BEN,SMITH,1975-01-01,20 ELM ST,60601,,false,u2
p_vip,STAR,WHITE,1970-01-01,1 GOLD AVE,60614,,true,
p_dead,OLD,GREY,1930-01-01,5 MILL LN,60618,2026-08-01,false,
p_a,A,AA,1990-01-01,1 A ST,60601,,false,
p_b,B,BB,1990-01-01,1 B ST,60601,,false,
p_c,C,CC,1990-01-01,1 C ST,60601,,false,
p_d,D,DD,1990-01-01,1 D ST,60601,,false,
p_e,E,EE,1990-01-01,1 E ST,60601,,false,
";

/// Encounters that explain everything a `benign` case does.
const CARE: &str = "encounter_id,patient_id,user_id,department,start_ts,end_ts
e1,p_fam,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e2,p_nbr,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e3,p_cow,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e4,p_vip,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e5,p_a,u2,emergency,2026-11-10T10:20:00Z,2026-11-10T14:00:00Z
e6,p_a,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e7,p_b,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e8,p_c,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e9,p_d,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
e10,p_e,u9,icu,2026-11-10T06:00:00Z,2026-11-12T06:00:00Z
";

const NO_CARE: &str = "encounter_id,patient_id,user_id,department,start_ts,end_ts\n";

/// `ts,user_id,patient_id,action[,outcome[,src_ip]]` lines → a stored-schema batch.
fn events(lines: &str) -> RecordBatch {
    let rows: Vec<Vec<&str>> = lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    let col = |i: usize| -> Vec<Option<&str>> {
        rows.iter()
            .map(|r| r.get(i).copied().filter(|v| !v.is_empty()))
            .collect()
    };
    let ts: Vec<i64> = rows.iter().map(|r| us(r[0])).collect();
    let n = rows.len();
    let none = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; n])) };
    let text = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let outcome: Vec<Option<&str>> = col(4).into_iter().map(|o| o.or(Some("success"))).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC")),
        text(col(1)),
        none(),
        none(),
        text(col(2)),
        text(col(3)),
        none(),
        text(outcome),
        none(),
        text(col(5)),
        none(),
        none(),
        text(vec![Some("inline"); n]),
        Arc::new(Int64Array::from((1..=n as i64).collect::<Vec<_>>())),
        Arc::new(Date32Array::from(
            ts.iter()
                .map(|t| t.div_euclid(86_400_000_000) as i32)
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema::stored(&schema::access_events()), columns).unwrap()
}

fn reference(dir: &Path, encounters: &str) -> Reference {
    std::fs::write(dir.join("staff.csv"), STAFF).unwrap();
    std::fs::write(dir.join("patients.csv"), PATIENTS).unwrap();
    std::fs::write(dir.join("encounters.csv"), encounters).unwrap();
    Reference::load(dir).unwrap()
}

fn builtin_rule(id: &str) -> Rule {
    let (rules, errors) = rule::parse_all(
        rule::builtin()
            .into_iter()
            .map(|(o, t)| (o, t.to_string()))
            .collect(),
    );
    assert!(errors.is_empty(), "{errors:?}");
    rules
        .into_iter()
        .find(|r| r.id == id)
        .expect("a built-in rule")
}

fn views() -> Vec<View> {
    rule::builtin_views()
        .iter()
        .map(|(o, t)| View::parse(o, t).unwrap())
        .collect()
}

/// Syslog text (year 2026, UTC) → stored `system_events` batches, through the real decoder.
fn system_events(text: &str) -> Vec<RecordBatch> {
    let opts = emrwatch::ingest::IngestOptions {
        format: emrwatch::ingest::Format::Syslog,
        syslog_year: Some(2026),
        ..Default::default()
    };
    emrwatch::ingest::decode_bytes("mem://syslog", text.as_bytes(), &opts)
        .into_iter()
        .map(|d| {
            assert!(d.rejects.is_empty(), "{:?}", d.rejects);
            emrwatch::store::stored_batch(&d.batch, schema::TS).unwrap()
        })
        .collect()
}

async fn run_with(rule: &Rule, lines: &str, encounters: &str, range: Range) -> Vec<Alert> {
    run_both(rule, lines, "", encounters, range).await
}

async fn run_both(
    rule: &Rule,
    lines: &str,
    syslog: &str,
    encounters: &str,
    range: Range,
) -> Vec<Alert> {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, all) = session(dir.path(), lines, syslog, encounters).await;
    detect::check(&ctx, rule).await.unwrap();
    detect::run_rule(&ctx, &all, &views(), rule, range, "test")
        .await
        .unwrap()
}

/// A rule session over the events of `lines` and `syslog`, with the
/// reference tables (written to `dir`) and the views registered.
async fn session(
    dir: &Path,
    lines: &str,
    syslog: &str,
    encounters: &str,
) -> (SessionContext, detect::Events) {
    let ctx = SessionContext::new();
    functions::register(&ctx);
    reference(dir, encounters).register(&ctx).unwrap();
    let batch = events(lines);
    let all = detect::Events {
        access: Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap()),
        system: Arc::new(
            MemTable::try_new(
                schema::stored(&schema::system_events()),
                vec![system_events(syslog)],
            )
            .unwrap(),
        ),
    };
    all.register(&ctx).unwrap();
    detect::register_views(&ctx, &views(), &[]).await.unwrap();
    (ctx, all)
}

async fn run(id: &str, lines: &str, encounters: &str) -> Vec<Alert> {
    run_with(&builtin_rule(id), lines, encounters, Range::default()).await
}

#[tokio::test]
async fn self_access_alerts_on_own_chart_not_on_a_colleague_treating_them() {
    let own = "2026-11-10T09:00:00Z,u1,p_self,view";
    let a = run("self_access", own, NO_CARE).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].user_id.as_deref(), Some("u1"));
    assert_eq!(a[0].patient_ids, vec!["p_self"]);
    assert!(a[0].summary.contains("own chart"), "{}", a[0].summary);
    let colleague = "2026-11-10T09:00:00Z,u5,p_self,view";
    assert!(run("self_access", colleague, NO_CARE).await.is_empty());
}

#[tokio::test]
async fn family_snooping_alerts_unless_she_cares_for_her_namesake() {
    let view = "2026-11-10T09:00:00Z,u1,p_fam,view\n2026-11-10T09:05:00Z,u1,p_fam,view";
    let a = run("family_snooping", view, NO_CARE).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].event_count, 2);
    assert!(a[0].summary.contains("surname GARCIA"), "{}", a[0].summary);
    // Same surname, but her department (icu) is treating the patient.
    assert!(run("family_snooping", view, CARE).await.is_empty());
}

/// One unexplained view of `patient` by nurse u1 alerts (with `says` in the
/// summary); the same view while her department treats the patient does not.
async fn alerts_unless_explained(rule: &str, patient: &str, says: &str) {
    let view = format!("2026-11-10T09:00:00Z,u1,{patient},view");
    let a = run(rule, &view, NO_CARE).await;
    assert_eq!(a.len(), 1, "{rule}");
    assert_eq!(a[0].patient_ids, vec![patient]);
    assert!(a[0].summary.contains(says), "{rule}: {}", a[0].summary);
    assert!(
        run(rule, &view, CARE).await.is_empty(),
        "{rule} with an encounter"
    );
}

#[tokio::test]
async fn neighbor_coworker_and_vip_snooping_alert_unless_explained() {
    alerts_unless_explained("neighbor_snooping", "p_nbr", "OAK ST").await;
    alerts_unless_explained("coworker_snooping", "p_cow", "colleague u2").await;
    alerts_unless_explained("vip_snooping", "p_vip", "VIP patient").await;
}

/// Only opens that succeeded count: a refused open alone raises nothing,
/// and beside a successful one it is not among the alert's events. (The
/// rules test the outcome in their aggregates' FILTERs, not in a WHERE.)
#[tokio::test]
async fn self_and_deceased_access_count_only_the_opens_that_succeeded() {
    for (rule, user, patient) in [
        ("self_access", "u1", "p_self"),
        ("deceased_access", "u1", "p_dead"),
    ] {
        let refused = format!("2026-11-10T09:00:00Z,{user},{patient},view,failure");
        assert!(run(rule, &refused, NO_CARE).await.is_empty(), "{rule}");
        let both = format!("{refused}\n2026-11-10T09:05:00Z,{user},{patient},view");
        let a = run(rule, &both, NO_CARE).await;
        assert_eq!(a.len(), 1, "{rule}: {a:?}");
        assert_eq!(a[0].event_count, 1, "{rule}");
        assert_eq!(a[0].first_us, us("2026-11-10T09:05:00Z"), "{rule}");
        assert!(
            a[0].summary.contains(" 1 time(s)"),
            "{rule}: {}",
            a[0].summary
        );
    }
}

#[tokio::test]
async fn deceased_access_alerts_for_a_nurse_not_for_him_closing_the_record() {
    let a = run(
        "deceased_access",
        "2026-11-10T09:00:00Z,u1,p_dead,view",
        NO_CARE,
    )
    .await;
    assert_eq!(a.len(), 1);
    assert!(a[0].summary.contains("2026-08-01"), "{}", a[0].summary);
    assert!(
        run(
            "deceased_access",
            "2026-11-10T09:00:00Z,u3,p_dead,print",
            NO_CARE
        )
        .await
        .is_empty()
    );
    // Died less than 30 days before: still care (or its paperwork).
    assert!(
        run(
            "deceased_access",
            "2026-08-20T09:00:00Z,u1,p_dead,view",
            NO_CARE
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn terminated_access_alerts_after_the_last_day_only() {
    let after = "2026-11-10T09:00:00Z,u4,,login,,203.0.113.9\n2026-11-10T09:02:00Z,u4,p_a,view,,203.0.113.9";
    let a = run("terminated_access", after, NO_CARE).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].patient_ids, vec!["p_a"]);
    assert!(a[0].summary.contains("2026-10-15"), "{}", a[0].summary);
    let before = "2026-10-10T09:00:00Z,u4,p_a,view";
    assert!(run("terminated_access", before, NO_CARE).await.is_empty());
}

/// `days` days of `per_day` distinct patients for `user`, from 2026-11-01.
fn daily_views(user: &str, days: u32, per_day: u32) -> String {
    let mut s = String::new();
    for d in 0..days {
        for p in 0..per_day {
            s.push_str(&format!(
                "2026-11-{:02}T{:02}:{:02}:00Z,{user},P{d}_{p},view\n",
                d + 1,
                8 + p / 60,
                p % 60
            ));
        }
    }
    s
}

#[tokio::test]
async fn volume_spike_alerts_on_a_spike_not_on_a_steadily_busy_user() {
    // Three nurses with about 10 patients a day; on day 12 u1 opens 120.
    let mut lines = String::new();
    for (u, n) in [("u1", 10), ("u5", 11), ("u6", 9), ("u7", 10)] {
        lines.push_str(&daily_views(u, 11, n));
    }
    let mut spike = lines.clone();
    for p in 0..120 {
        spike.push_str(&format!(
            "2026-11-12T{:02}:{:02}:00Z,u1,S{p},view\n",
            8 + p / 60,
            p % 60
        ));
    }
    for (u, n) in [("u5", 11), ("u6", 9), ("u7", 10)] {
        for p in 0..n {
            spike.push_str(&format!("2026-11-12T09:{p:02}:00Z,{u},Q{u}{p},view\n"));
        }
    }
    // The same day, events that read no chart: an export, a failed view, a
    // login; and a view the next day. None is in the alert.
    spike.push_str(
        "2026-11-12T07:00:00Z,u1,X1,export\n\
         2026-11-12T07:30:00Z,u1,X2,view,failure\n\
         2026-11-12T20:00:00Z,u1,,login\n\
         2026-11-13T08:00:00Z,u1,X3,view\n",
    );
    let a = run("volume_spike", &spike, NO_CARE).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].user_id.as_deref(), Some("u1"));
    assert!(a[0].summary.contains("120 distinct"), "{}", a[0].summary);
    // The alert holds the spike's chart reads, and only those.
    assert_eq!(a[0].event_count, 120);
    assert_eq!(a[0].patient_ids.len(), 120);
    assert!(
        a[0].patient_ids.iter().all(|p| p.starts_with('S')),
        "{:?}",
        a[0].patient_ids
    );
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    };
    assert_eq!(
        (a[0].first_us, a[0].last_us),
        (at("2026-11-12T08:00:00Z"), at("2026-11-12T09:59:00Z"))
    );
    // u1 always opens 120 charts a day (HIM-like work): no spike against their own days.
    let busy = daily_views("u1", 12, 120) + &lines;
    assert!(run("volume_spike", &busy, NO_CARE).await.is_empty());
}

#[tokio::test]
async fn bulk_export_alerts_on_exports_not_on_him_release_of_information() {
    let mut exports = String::new();
    let mut prints = String::new();
    for (i, p) in [
        "p_a", "p_b", "p_c", "p_d", "p_e", "p_fam", "p_nbr", "p_vip", "p_cow",
    ]
    .iter()
    .enumerate()
    {
        exports.push_str(&format!("2026-11-10T10:{i:02}:00Z,u1,{p},export\n"));
    }
    for i in 0..30 {
        prints.push_str(&format!("2026-11-10T10:{i:02}:00Z,u3,X{i},print\n"));
    }
    let a = run("bulk_export", &exports, NO_CARE).await;
    assert_eq!(a.len(), 1);
    assert!(a[0].summary.contains("exported 9"), "{}", a[0].summary);
    assert!(run("bulk_export", &prints, NO_CARE).await.is_empty());
    // The same 30 prints by a nurse are not HIM's work.
    let nurse = prints.replace(",u3,", ",u1,");
    assert_eq!(run("bulk_export", &nurse, NO_CARE).await.len(), 1);
    // Refused exports are not exports: two of the nine fail, seven stay
    // under the eight it takes.
    let refused = exports
        .replacen(",p_a,export\n", ",p_a,export,failure\n", 1)
        .replacen(",p_b,export\n", ",p_b,export,failure\n", 1);
    assert!(run("bulk_export", &refused, NO_CARE).await.is_empty());
}

#[tokio::test]
async fn break_glass_alerts_unless_an_encounter_follows() {
    // ED physician breaks the glass at 10:00; the ED encounter opens at 10:20.
    let bg = "2026-11-10T10:00:00Z,u2,p_a,break_glass";
    assert!(run("break_glass_misuse", bg, CARE).await.is_empty());
    let a = run("break_glass_misuse", bg, NO_CARE).await;
    assert_eq!(a.len(), 1);
    assert!(a[0].summary.contains("broke the glass"), "{}", a[0].summary);
}

/// `user` viewing a chart at ten past each of `hours` on November 1 to `days`.
fn worked(user: &str, days: u32, hours: &[u32]) -> String {
    let mut s = String::new();
    for d in 1..=days {
        for h in hours {
            s.push_str(&format!("2026-11-{d:02}T{h:02}:10:00Z,{user},p_a,view\n"));
        }
    }
    s
}

#[tokio::test]
async fn after_hours_alerts_for_a_day_worker_at_night_not_a_night_nurse() {
    let day_worker = worked("u1", 10, &[8, 9, 10, 11, 12, 13, 14, 15]);
    let mut night = day_worker.clone();
    for m in 0..15 {
        night.push_str(&format!("2026-11-11T02:{:02}:00Z,u1,N{m},view\n", m * 3));
    }
    let a = run("after_hours", &night, NO_CARE).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].event_count, 15);
    // A night nurse, at night, every night.
    let night_nurse = worked("u5", 11, &[22, 23, 0, 1, 2, 3, 4, 5]);
    assert!(run("after_hours", &night_nurse, NO_CARE).await.is_empty());
}

#[tokio::test]
async fn after_hours_counts_neighbouring_hours_across_midnight_and_needs_history() {
    // An evening worker, 16:00 to midnight on ten days.
    let evening = worked("u1", 10, &[16, 17, 18, 19, 20, 21, 22, 23]);
    let night_at = |hour: u32| {
        (0..15)
            .map(|m| format!("2026-11-11T{hour:02}:{:02}:00Z,u1,N{m},view\n", m * 3))
            .collect::<String>()
    };
    // Past midnight is next to 23:00, a usual hour: overtime, not after hours.
    assert!(
        run("after_hours", &(evening.clone() + &night_at(0)), NO_CARE)
            .await
            .is_empty()
    );
    // Nor is 23:00 for an early worker, 00:00 to 08:00: next to midnight the other way.
    let early = worked("u1", 10, &[0, 1, 2, 3, 4, 5, 6, 7]);
    assert!(
        run("after_hours", &(early + &night_at(23)), NO_CARE)
            .await
            .is_empty()
    );
    // Two hours after midnight is after hours for the evening worker.
    let a = run("after_hours", &(evening.clone() + &night_at(2)), NO_CARE).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].event_count, 15);
    // Three days of history in all (the night included) are too few to know habits.
    let short = worked("u1", 2, &[16, 17, 18, 19, 20, 21, 22, 23]);
    assert!(
        run("after_hours", &(short + &night_at(2)), NO_CARE)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn record_tampering_alerts_on_unexplained_changes_only() {
    let changes = "2026-11-10T10:00:00Z,u1,p_a,delete\n2026-11-10T10:01:00Z,u1,p_b,delete\n\
                   2026-11-10T10:02:00Z,u1,p_c,update\n2026-11-10T10:03:00Z,u1,p_d,delete\n\
                   2026-11-10T10:04:00Z,u1,p_e,delete";
    let a = run("record_tampering", changes, NO_CARE).await;
    assert_eq!(a.len(), 1);
    assert!(
        a[0].summary.contains("deleted 4 and updated 1"),
        "{}",
        a[0].summary
    );
    // The icu is treating all five patients.
    assert!(run("record_tampering", changes, CARE).await.is_empty());
}

#[tokio::test]
async fn account_compromise_alerts_on_guessing_not_on_a_typo() {
    let mut guess = String::new();
    for s in 0..6 {
        guess.push_str(&format!(
            "2026-11-10T10:00:{:02}Z,u1,,login_failed,failure,203.0.113.7\n",
            s * 7
        ));
    }
    guess.push_str("2026-11-10T10:01:00Z,u1,,login,success,203.0.113.7\n2026-11-10T10:02:00Z,u1,p_a,view,success,203.0.113.7\n");
    let a = run("account_compromise", &guess, NO_CARE).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].src_ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(a[0].patient_ids, vec!["p_a"]);
    let typo = "2026-11-10T10:00:00Z,u1,,login_failed,failure,10.0.0.5\n2026-11-10T10:00:09Z,u1,,login,success,10.0.0.5";
    assert!(run("account_compromise", typo, NO_CARE).await.is_empty());
}

/// A host rule over syslog text alone.
async fn run_host(id: &str, syslog: &str) -> Vec<Alert> {
    run_both(&builtin_rule(id), "", syslog, NO_CARE, Range::default()).await
}

/// `n` failed SSH passwords for `user` from `ip` on jump01, `gap_s` apart from `from`.
fn guesses(from: &str, n: u32, gap_s: i64, user: &str, ip: &str) -> String {
    let t0 = us(from) / 1_000_000;
    (0..n)
        .map(|i| {
            let t = chrono::DateTime::from_timestamp(t0 + i64::from(i) * gap_s, 0).unwrap();
            format!(
                "{} jump01 sshd[{}]: Failed password for {user} from {ip} port {} ssh2\n",
                t.format("%b %e %H:%M:%S"),
                4000 + i,
                40000 + i
            )
        })
        .collect()
}

#[tokio::test]
async fn ssh_bruteforce_alerts_on_many_guesses_worse_when_one_gets_in_not_on_a_typo() {
    let burst = guesses("2026-11-10T03:00:00Z", 40, 7, "root", "192.0.2.7");
    let a = run_host("ssh_bruteforce", &burst).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (
            a[0].host.as_deref(),
            a[0].src_ip.as_deref(),
            a[0].user_id.as_deref()
        ),
        (Some("jump01"), Some("192.0.2.7"), None)
    );
    assert_eq!(a[0].event_count, 40);
    assert_eq!(a[0].severity, rule::Severity::High);
    assert!(
        a[0].summary.contains("failed 40 SSH logins"),
        "{}",
        a[0].summary
    );

    // A slow guesser (every 4 minutes for two hours) who then gets in.
    let mut slow = guesses("2026-11-10T03:00:00Z", 30, 240, "svc_backup", "192.0.2.8");
    slow.push_str("Nov 10 05:01:00 jump01 sshd[9]: Accepted password for svc_backup from 192.0.2.8 port 50000 ssh2\n");
    let a = run_host("ssh_bruteforce", &slow).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].severity, rule::Severity::Critical);
    assert_eq!(a[0].user_id.as_deref(), Some("svc_backup"));
    assert_eq!(a[0].last_us, us("2026-11-10T05:01:00Z"));

    // An admin mistyping twice, then in; and a scanner trying twice every three hours.
    let mut benign = guesses("2026-11-10T09:00:00Z", 2, 5, "u00042", "10.20.0.10");
    benign.push_str("Nov 10 09:00:15 jump01 sshd[9]: Accepted publickey for u00042 from 10.20.0.10 port 50000 ssh2: ED25519 SHA256:x\n");
    for h in (0..24).step_by(3) {
        benign.push_str(&guesses(
            &format!("2026-11-10T{h:02}:30:00Z"),
            2,
            3,
            "admin",
            "198.51.100.9",
        ));
    }
    assert!(run_host("ssh_bruteforce", &benign).await.is_empty());
}

#[tokio::test]
async fn account_compromise_uses_ssh_guessing_that_gets_in() {
    let mut slow = guesses("2026-11-10T03:00:00Z", 8, 60, "svc_backup", "192.0.2.8");
    slow.push_str("Nov 10 03:09:00 jump01 sshd[9]: Accepted password for svc_backup from 192.0.2.8 port 50000 ssh2\n");
    let a = run_both(
        &builtin_rule("account_compromise"),
        "",
        &slow,
        NO_CARE,
        Range::default(),
    )
    .await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (
            a[0].user_id.as_deref(),
            a[0].host.as_deref(),
            a[0].src_ip.as_deref()
        ),
        (Some("svc_backup"), Some("jump01"), Some("192.0.2.8"))
    );
    assert!(a[0].summary.contains("over SSH"), "{}", a[0].summary);
    // The same guesses that never get in are a brute force, not a compromise.
    let failed = guesses("2026-11-10T03:00:00Z", 8, 60, "svc_backup", "192.0.2.8");
    assert!(run_host("account_compromise", &failed).await.is_empty());
}

/// An admin's working day on emr-db01: SSH in, sudo.
fn admin_day(day: u32, user: &str) -> String {
    format!(
        "Nov {day} 09:00:00 emr-db01 sshd[10]: Accepted publickey for {user} from 10.20.0.10 port 5000 ssh2: ED25519 SHA256:x\n\
         Nov {day} 09:05:00 emr-db01 sudo[11]: {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/df -h\n"
    )
}

/// The backup account's nightly login, never with sudo.
fn backup_night(day: u32) -> String {
    format!(
        "Nov {day} 02:00:00 emr-db01 sshd[20]: Accepted password for svc_backup from 10.20.9.5 port 5001 ssh2\n"
    )
}

#[tokio::test]
async fn privilege_escalation_alerts_on_admin_grants_and_first_sudo_not_on_an_admin() {
    let grant = "Nov 10 01:29:51 emr-app01 useradd[5]: new user: name=svc_sync3, UID=1500, GID=1500, home=/home/svc_sync3, shell=/bin/bash, from=/dev/pts/1
Nov 10 01:30:11 emr-app01 usermod[6]: add 'svc_sync3' to group 'sudo'
Nov 10 01:30:11 emr-app01 usermod[6]: add 'svc_sync3' to shadow group 'sudo'
Nov 10 01:40:51 emr-app01 sudo[7]: svc_sync3 : TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/bash
";
    let a = run_host("privilege_escalation", grant).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].user_id.as_deref(), Some("svc_sync3"));
    assert_eq!(a[0].event_count, 2, "the grant and the sudo after it");
    assert_eq!(a[0].last_us, us("2026-11-10T01:40:51Z"));

    let mut backup: String = (7..10).map(backup_night).collect();
    backup.push_str("Nov 10 12:08:11 emr-db01 sudo[30]: svc_backup : TTY=pts/0 ; PWD=/var/backups ; USER=root ; COMMAND=/bin/sh\n");
    let a = run_host("privilege_escalation", &backup).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].user_id.as_deref(), Some("svc_backup"));
    assert!(
        a[0].summary.contains("3 earlier day(s)"),
        "{}",
        a[0].summary
    );

    // An admin who always uses sudo, and new hires' accounts in no admin group.
    let mut benign: String = (2..12).map(|d| admin_day(d, "u00042")).collect();
    benign.push_str("Nov 10 10:00:01 emr-db01 useradd[40]: new user: name=u07001, UID=2001, GID=2001, home=/home/u07001, shell=/bin/bash, from=/dev/pts/0\n");
    benign.push_str("Nov 10 10:00:02 emr-db01 usermod[41]: add 'u07001' to group 'users'\n");
    assert!(run_host("privilege_escalation", &benign).await.is_empty());
}

/// cron's quarter-hourly session on `host` through `day`: a host's steady heartbeat.
fn heartbeat(host: &str, day: u32, from_h: u32, to_h: u32) -> String {
    let mut out = String::new();
    for h in from_h..to_h {
        for m in [0, 15, 30, 45] {
            out.push_str(&format!(
                "Nov {day} {h:02}:{m:02}:01 {host} CRON[{}]: pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)\n",
                100 + h * 4 + m / 15
            ));
        }
    }
    out
}

const ROTATE: &str = "Nov 10 00:00:11 emr-app01 systemd[1]: Stopping rsyslog.service - System Logging Service...
Nov 10 00:00:11 emr-app01 rsyslogd[600]: [origin software=\"rsyslogd\" swVersion=\"8.2302.0\" x-pid=\"600\" x-info=\"https://www.rsyslog.com\"] exiting on signal 15.
Nov 10 00:00:12 emr-app01 systemd[1]: Stopped rsyslog.service - System Logging Service.
Nov 10 00:00:12 emr-app01 systemd[1]: Starting rsyslog.service - System Logging Service...
Nov 10 00:00:13 emr-app01 rsyslogd[601]: [origin software=\"rsyslogd\" swVersion=\"8.2302.0\" x-pid=\"601\" x-info=\"https://www.rsyslog.com\"] start
Nov 10 00:00:13 emr-app01 systemd[1]: Started rsyslog.service - System Logging Service.
";

#[tokio::test]
async fn log_tampering_alerts_on_clearing_stopping_and_silence_not_on_log_rotation() {
    let clear = "Nov 10 09:01:36 emr-db01 sudo[5]: u00054 : TTY=pts/2 ; PWD=/root ; USER=root ; COMMAND=/usr/sbin/auditctl -D\n";
    let a = run_host("log_tampering", clear).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        (a[0].user_id.as_deref(), a[0].host.as_deref()),
        (Some("u00054"), Some("emr-db01"))
    );

    let audit_off = "Nov 10 13:24:26 emr-db01 sudo[5]: u00054 : TTY=pts/2 ; PWD=/root ; USER=root ; COMMAND=/usr/bin/systemctl stop auditd
Nov 10 13:24:27 emr-db01 systemd[1]: Stopping auditd.service - Security Auditing Service...
Nov 10 13:24:27 emr-db01 auditd[700]: The audit daemon is exiting.
Nov 10 13:24:28 emr-db01 systemd[1]: Stopped auditd.service - Security Auditing Service.
";
    let a = run_host("log_tampering", audit_off).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(
        a[0].summary.starts_with("auditd was stopped on emr-db01"),
        "{}",
        a[0].summary
    );

    // Four days of a quarter-hourly heartbeat, then five hours of nothing.
    let mut quiet: String = (6..10).map(|d| heartbeat("jump01", d, 0, 24)).collect();
    quiet.push_str(&heartbeat("jump01", 10, 0, 9));
    quiet.push_str(&heartbeat("jump01", 10, 14, 24));
    let a = run_host("log_tampering", &quiet).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].host.as_deref(), Some("jump01"));
    assert_eq!(
        (a[0].first_us, a[0].last_us),
        (us("2026-11-10T08:45:01Z"), us("2026-11-10T14:00:01Z"))
    );

    // The nightly rotation restarts rsyslog within seconds, on a steady host.
    let mut rotate: String = (6..11).map(|d| heartbeat("emr-app01", d, 0, 24)).collect();
    rotate.push_str(ROTATE);
    assert!(run_host("log_tampering", &rotate).await.is_empty());
}

#[tokio::test]
async fn since_and_until_bound_what_a_rule_reads_and_reports() {
    let rule = builtin_rule("terminated_access");
    let lines = "2026-11-10T09:00:00Z,u4,p_a,view\n2026-11-12T09:00:00Z,u4,p_b,view\n2026-11-14T09:00:00Z,u4,p_c,view";
    let all = run_with(&rule, lines, NO_CARE, Range::default()).await;
    assert_eq!(all.len(), 3);
    let range = Range {
        since: Some(us("2026-11-11T00:00:00Z")),
        until: Some(us("2026-11-13T00:00:00Z")),
    };
    let some = run_with(&rule, lines, NO_CARE, range).await;
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].patient_ids, vec!["p_b"]);
}

/// What detect keeps in memory for a scope of rules: only the columns the
/// rules and views read, only the events of the range and its look-back, and
/// nothing when they would take more than the budget.
#[tokio::test]
async fn the_event_cache_holds_the_columns_and_rows_a_scope_reads_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "2026-11-10T09:00:00Z,u4,p_a,view\n2026-11-12T09:00:00Z,u4,p_b,view\n2026-11-14T09:00:00Z,u4,p_c,view";
    let (ctx, all) = session(dir.path(), lines, "", NO_CARE).await;
    let rule = builtin_rule("terminated_access");
    let columns = detect::columns_read(&ctx, &[&rule], &views())
        .await
        .unwrap();
    let read = &columns["access_events"];
    for c in ["ts", "user_id", "patient_id", "outcome"] {
        assert!(read.contains(c), "{c} in {read:?}");
    }
    for c in ["source", "source_line", "session_id", "resource"] {
        assert!(!read.contains(c), "{c} in {read:?}");
    }
    let range = Range {
        since: Some(us("2026-11-12T00:00:00Z")),
        until: Some(us("2026-11-13T00:00:00Z")),
    };
    let two_days = 2 * 86_400_000_000;
    let (cached, bytes) = detect::cache(&ctx, &all, range, two_days, &columns, 1 << 30)
        .await
        .unwrap()
        .expect("three events fit in 1 GiB");
    assert!(bytes > 0);
    let kept: std::collections::BTreeSet<String> = cached
        .access
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(&kept, read);
    // Text is held as views, so ids compare and hash as 16-byte words.
    let patient = cached
        .access
        .schema()
        .field_with_name("patient_id")
        .unwrap()
        .clone();
    assert_eq!(patient.data_type(), &arrow::datatypes::DataType::Utf8View);
    let rows = ctx
        .read_table(cached.access.clone())
        .unwrap()
        .sort(vec![datafusion::prelude::col("ts").sort(true, false)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let patients: Vec<String> = rows
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(
                b.column_by_name("patient_id").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let c = c.as_string::<i32>();
            c.iter().flatten().map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        patients,
        ["p_a", "p_b"],
        "the look-back's, not after --until"
    );
    assert!(
        detect::cache(&ctx, &all, range, two_days, &columns, 16)
            .await
            .unwrap()
            .is_none(),
        "16 bytes hold no batch"
    );
}

/// The cached access events are split by user as DataFusion hashes them,
/// and the table says so: a grouping by user and day takes one pass per
/// partition, with no repartitioning, and every group comes out once.
#[tokio::test]
async fn the_event_cache_splits_the_events_by_user_so_a_grouping_by_user_takes_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let config = emrwatch::sql::session::rules_config()
        .unwrap()
        .with_target_partitions(2);
    let ctx = SessionContext::new_with_config(config);
    functions::register(&ctx);
    reference(dir.path(), NO_CARE).register(&ctx).unwrap();
    // 12 users over 5 days, 3 events a day each, read in two partitions by
    // time (as the store's files are): every user's events in both.
    let mut lines = Vec::new();
    for day in 10..15 {
        for u in 0..12 {
            for h in [8, 9, 10] {
                lines.push(format!("2026-11-{day}T{h:02}:00:00Z,u{u},p{u}_{h},view"));
            }
        }
    }
    let batch = events(&lines.join("\n"));
    let half = batch.num_rows() / 2;
    let all = detect::Events {
        access: Arc::new(
            MemTable::try_new(
                batch.schema(),
                vec![
                    vec![batch.slice(0, half)],
                    vec![batch.slice(half, batch.num_rows() - half)],
                ],
            )
            .unwrap(),
        ),
        system: Arc::new(
            MemTable::try_new(
                schema::stored(&schema::system_events()),
                vec![system_events("")],
            )
            .unwrap(),
        ),
    };
    all.register(&ctx).unwrap();
    detect::register_views(&ctx, &views(), &[]).await.unwrap();
    let rule = builtin_rule("after_hours");
    let columns = detect::columns_read(&ctx, &[&rule], &views())
        .await
        .unwrap();
    let (cached, _) = detect::cache(
        &ctx,
        &all,
        Range::default(),
        30 * 86_400_000_000,
        &columns,
        1 << 30,
    )
    .await
    .unwrap()
    .expect("180 events fit in 1 GiB");

    let parts = ctx
        .read_table(cached.access.clone())
        .unwrap()
        .select_columns(&["user_id"])
        .unwrap()
        .collect_partitioned()
        .await
        .unwrap();
    let users: Vec<std::collections::BTreeSet<String>> = parts
        .iter()
        .map(|p| {
            p.iter()
                .flat_map(|b| {
                    let c = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                        .unwrap();
                    c.as_string::<i32>()
                        .iter()
                        .flatten()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    assert_eq!(users.len(), 2);
    assert!(users[0].is_disjoint(&users[1]), "{users:?}");
    assert_eq!(users[0].len() + users[1].len(), 12, "{users:?}");

    ctx.deregister_table("access_events").unwrap();
    ctx.register_table("access_events", cached.access.clone())
        .unwrap();
    let df = ctx
        .sql(
            "SELECT user_id, date_trunc('day', ts) AS day, count(*) AS n \
             FROM access_events GROUP BY user_id, date_trunc('day', ts)",
        )
        .await
        .unwrap();
    let plan = df.clone().create_physical_plan().await.unwrap();
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string();
    assert!(
        shown.contains("SinglePartitioned") && !shown.contains("RepartitionExec"),
        "{shown}"
    );
    let groups = df.collect().await.unwrap();
    let counts: Vec<i64> = groups
        .iter()
        .flat_map(|b| {
            b.column(2)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(counts, vec![3; 60], "one row of 3 events per user and day");
}

#[tokio::test]
async fn a_rule_with_a_wrong_column_type_is_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    reference(dir.path(), NO_CARE).register(&ctx).unwrap();
    let bad = Rule::parse(
        "bad.sql",
        "-- id: bad\n-- title: t\n-- severity: low\n-- scenario: x\n-- description: d\n\
         SELECT user_id, CAST(NULL AS VARCHAR) AS host, CAST(NULL AS VARCHAR) AS src_ip, \
         CAST(NULL AS VARCHAR) AS patient_ids, now() AS first_ts, now() AS last_ts, \
         1 AS event_count, 'high' AS score, 'x' AS summary FROM staff",
    )
    .unwrap();
    let e = detect::check(&ctx, &bad).await.unwrap_err();
    assert!(e.contains("patient_ids"), "{e}");
}

fn write_rules(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("broken.sql"),
        "-- id: broken\n-- title: t\n-- severity: low\n-- scenario: x\n-- description: d\n\
         SELECT user_id, CAST(NULL AS VARCHAR) AS host, CAST(NULL AS VARCHAR) AS src_ip, \
         array_agg(patient_id) AS patient_ids, min(ts) AS first_ts, max(ts) AS last_ts, \
         count(*) AS event_count, 'high' AS score, 'x' AS summary FROM access_events GROUP BY user_id",
    )
    .unwrap();
    std::fs::copy(
        root().join("queries/terminated_access.sql"),
        dir.join("terminated_access.sql"),
    )
    .unwrap();
}

/// A generated hospital (20,000 events over 7 days, seed 5), its access logs
/// and its hosts' syslog ingested into `dir/store`: the store and the
/// reference folder.
fn ingested_hospital(dir: &Path) -> (PathBuf, PathBuf) {
    let h = dir.join("h");
    let store = dir.join("store");
    gen_hospital(&h, "20000", "7", "5");
    ingest(&store, &[&h.join("logs"), &h.join("syslog")], &[]);
    (store, h.join("ref"))
}

/// `detect --store STORE --ref REFERENCE`, then `extra`.
fn detect_args<'a>(store: &'a Path, reference: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "detect",
        "--store",
        store.to_str().unwrap(),
        "--ref",
        reference.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// The CLI end to end on a generated hospital: detect, detect again (nothing
/// new, nothing stored twice), and a broken rule named and skipped.
#[test]
fn detect_twice_raises_each_alert_once_and_names_a_broken_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (store, reference) = ingested_hospital(dir.path());
    let rules = dir.path().join("rules");
    write_rules(&rules);
    let detect = |extra: &[&str]| {
        let mut args = detect_args(&store, &reference, &["--rules", rules.to_str().unwrap()]);
        args.extend_from_slice(extra);
        ok(&args)
    };
    let first = detect(&["--out", "-"]);
    let err = stderr(&first);
    assert!(err.contains("broken.sql") && err.contains("score"), "{err}");
    let n = String::from_utf8_lossy(&first.stdout).lines().count();
    assert!(n >= 1, "the generated leavers' accounts are used: {err}");
    assert_eq!(scalar(&store, "SELECT count(*) FROM alerts"), n as i64);
    let second = detect(&[]);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.starts_with(&format!("0 new alerts ({n} already raised")),
        "{out}"
    );
    assert_eq!(scalar(&store, "SELECT count(*) FROM alerts"), n as i64);
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) - count(DISTINCT alert_id) FROM alerts"
        ),
        0
    );
}

/// Detect reads each scope's events into memory once when they fit in
/// `--memory-cache`. Its alerts are those of every rule reading the store:
/// over the whole store (one scope), over a `--since` range (a scope per
/// look-back), and with a budget too small, which falls back and says so.
#[test]
fn detect_finds_the_same_alerts_with_the_events_in_memory_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let (store, reference) = ingested_hospital(dir.path());
    let detect = |extra: &[&str]| -> (Vec<String>, String) {
        // Alerts already stored would not be raised again.
        let _ = std::fs::remove_dir_all(store.join("alerts"));
        let mut args = detect_args(&store, &reference, &["--out", "-"]);
        args.extend_from_slice(extra);
        let out = emrwatch()
            .env("EMRWATCH_VERBOSE", "1")
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}: {err}");
        let mut alerts: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("run_id");
                v.to_string()
            })
            .collect();
        alerts.sort();
        (alerts, err)
    };
    let day3 = query(
        &store,
        "SELECT CAST(CAST(min(ts) AS DATE) + INTERVAL '3' DAY AS VARCHAR) AS d FROM access_events",
    )[0]["d"]
        .as_str()
        .unwrap()
        .to_string();
    for since in [vec![], vec!["--since", day3.as_str()]] {
        let with = |mib: &'static str| {
            let mut a = since.clone();
            a.extend(["--memory-cache", mib]);
            detect(&a)
        };
        let (from_store, err) = with("0");
        assert!(!from_store.is_empty(), "{since:?}: {err}");
        assert!(!err.contains("into memory"), "{err}");
        let same = |other: &[String], how: &str| {
            let only = |a: &[String], b: &[String]| a.iter().filter(|x| !b.contains(x)).count();
            assert!(
                other == from_store,
                "{since:?}, {how}: {} alerts only there, {} only reading the store",
                only(other, &from_store),
                only(&from_store, other)
            );
        };
        let (in_memory, err) = with("2048");
        assert!(err.contains("read into memory"), "{since:?}: {err}");
        same(&in_memory, "in memory");
        if since.is_empty() {
            let (too_small, err) = with("1");
            assert!(
                err.contains("take more than --memory-cache (1 MiB)"),
                "{err}"
            );
            same(&too_small, "1 MiB");
        }
    }
}

/// Snooping scenarios whose precision the rules cannot reach on generated
/// data: the generator's background makes 7 % of chart access legitimate but
/// unexplained (consults, covering colleagues), to random living patients,
/// and with 40 surnames and 20 streets a random chart often belongs to a
/// namesake, a neighbour, a colleague or a VIP. One injected view of such a
/// chart looks exactly like those. Recall is still asserted; see the issue
/// note for the eval tables.
const PRECISION_GAP: &[&str] = &[
    "family_snooping",
    "neighbor_snooping",
    "coworker_snooping",
    "vip_snooping",
];

#[test]
fn every_scenario_is_found_on_three_generated_hospitals() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    // scenario -> (incidents, detected, alerts, true alerts), pooled over seeds.
    let mut pooled: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for seed in ["11", "12", "13"] {
        let h = dir.path().join(format!("h{seed}"));
        let alerts = dir.path().join(format!("alerts{seed}.jsonl"));
        gen_hospital(&h, "60000", "14", seed);
        ok(&[
            "scan",
            h.join("logs").to_str().unwrap(),
            h.join("syslog").to_str().unwrap(),
            "--ref",
            h.join("ref").to_str().unwrap(),
            "--out",
            alerts.to_str().unwrap(),
        ]);
        let out = ok(&[
            "eval",
            "--labels",
            h.join("labels.csv").to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
        ]);
        println!("seed {seed}:\n{}", String::from_utf8_lossy(&out.stdout));
        let out = ok(&[
            "eval",
            "--labels",
            h.join("labels.csv").to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
            "--json",
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for s in report["scenarios"].as_array().unwrap() {
            let e = pooled
                .entry(s["scenario"].as_str().unwrap().to_string())
                .or_default();
            for (i, k) in ["incidents", "detected", "alerts", "true_alerts"]
                .iter()
                .enumerate()
            {
                e[i] += s[k].as_u64().unwrap();
            }
        }
    }
    let mut failures = Vec::new();
    for name in emrwatch::synth::incidents::scenarios() {
        let [incidents, detected, alerts, true_alerts] =
            pooled.get(name).copied().unwrap_or_default();
        assert!(
            incidents >= 3,
            "{name}: only {incidents} incidents injected"
        );
        let recall = detected as f64 / incidents as f64;
        let precision = if alerts == 0 {
            0.0
        } else {
            true_alerts as f64 / alerts as f64
        };
        println!("{name:<20} recall {recall:.3} precision {precision:.3} ({alerts} alerts)");
        if recall < 0.9 {
            failures.push(format!("{name}: recall {recall:.3}"));
        }
        if precision < 0.8 && !PRECISION_GAP.contains(&name) {
            failures.push(format!("{name}: precision {precision:.3}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn scan_reads_a_mixed_folder_and_skips_a_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h");
    gen_hospital(&h, "20000", "7", "3");
    // A host log among the FHIR days is read (into system_events); a CSV
    // export without a time column, and a text file in no format, are
    // reported and skipped, not fatal.
    std::fs::copy(h.join("syslog/emr-app01.log"), h.join("logs/emr-app01.log")).unwrap();
    std::fs::write(
        h.join("logs/export.csv"),
        "user_id,patient_id\nu00001,MRN0000001\n",
    )
    .unwrap();
    std::fs::write(
        h.join("logs/notes.txt"),
        "Exported by the night shift\nask Dana about the rest\n",
    )
    .unwrap();
    let out = ok(&[
        "scan",
        h.join("logs").to_str().unwrap(),
        "--ref",
        h.join("ref").to_str().unwrap(),
        "--out",
        "-",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("export.csv") && err.contains("no column `ts`"),
        "{err}"
    );
    assert!(
        err.contains("notes.txt") && err.contains("file skipped"),
        "{err}"
    );
    assert!(
        !err.contains("emr-app01.log"),
        "the host log is read: {err}"
    );
    assert!(
        err.contains("2 rejected"),
        "one reject for each whole file: {err}"
    );
    let alerts = String::from_utf8_lossy(&out.stdout);
    assert!(alerts.lines().count() >= 5, "{err}");
    for line in alerts.lines() {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(a["alert_id"].as_str().is_some_and(|s| s.len() == 16), "{a}");
    }
}

/// detect reads the reference files while it checks the rules and reads the
/// events: a bad file still stops it, naming the file, line and column,
/// before any rule runs or any alert is stored.
#[test]
fn detect_stops_on_a_bad_reference_file_read_beside_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref");
    std::fs::create_dir(&reference).unwrap();
    let write = |name: &str, text: &str| std::fs::write(reference.join(name), text).unwrap();
    write(
        "staff.csv",
        "user_id,first_name,last_name,role,department,address,zip,hire_date,termination_date\n\
         u1,ANA,GARCIA,nurse,icu,1 OAK ST,60622,2020-01-02,\n",
    );
    write(
        "patients.csv",
        "patient_id,first_name,last_name,birth_date,address,zip,deceased_date,vip,employee_user_id\n\
         p1,LUIS,GARCIA,1970-05-06,2 OAK ST,60622,,true,\n",
    );
    write(
        "encounters.csv",
        "encounter_id,patient_id,user_id,department,start_ts,end_ts\n\
         e1,p1,u1,icu,2026-11-01T08:00:00Z,\n\
         e2,p1,u1,icu,2026-11-01X09:00:00Z,\n",
    );
    let store = dir.path().join("store");
    let out = crate::common::run(&detect_args(&store, &reference, &[]));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("encounters.csv:3") && err.contains("start_ts"),
        "{err}"
    );
    assert!(!err.contains("new alerts"), "{err}");
    assert!(!store.join("alerts").exists(), "nothing stored");
}
