//! SIEM sinks delivering to a real rsyslog on loopback ports.

use emrwatch::detect::Alert;
use emrwatch::detect::rule::Severity;
use emrwatch::siem::{self, SinkSpec, cef, leef, syslog::TlsSettings};

use crate::common::gen_hospital;
use crate::common::services::Rsyslog;
use crate::run::Target;

fn tricky_alert() -> Alert {
    Alert {
        alert_id: "a1b2c3".into(),
        run_id: "run-7".into(),
        rule_id: "family_snooping".into(),
        scenario: "family_snooping".into(),
        severity: Severity::High,
        user_id: Some("u0412".into()),
        host: None,
        src_ip: Some("10.0.0.7".into()),
        patient_ids: vec!["p1".into(), "p2".into()],
        first_us: 1_795_000_000_000_000,
        last_us: 1_795_000_600_000_000,
        event_count: 3,
        score: 4.25,
        summary: "a=b \\ back|slash ^caret\nsecond line\tand a tab".into(),
    }
}

/// The message after the RFC 5424 header `<PRI>1 TS HOST APP PID MSGID - `.
fn body(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..7 {
        rest = rest.split_once(' ').map(|(_, r)| r).unwrap_or("");
    }
    rest
}

#[test]
fn cef_and_leef_over_udp_and_tcp_reach_rsyslog_and_parse_back() {
    let dir = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(dir.path());
    let al = tricky_alert();
    let sinks = [
        format!("cef+udp://127.0.0.1:{}", rs.udp),
        format!("cef+tcp://127.0.0.1:{}", rs.tcp),
        format!("leef+udp://127.0.0.1:{}", rs.udp),
        format!("leef+tcp://127.0.0.1:{}", rs.tcp),
    ];
    for s in &sinks {
        let spec = SinkSpec::parse(s).unwrap();
        siem::deliver(&[spec], std::slice::from_ref(&al), &TlsSettings::default()).unwrap();
    }
    let lines = rs.received(4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let mut cefs = 0;
    let mut leefs = 0;
    for line in &lines {
        assert!(
            line.starts_with("<163>1 "),
            "facility local4, severity error: {line}"
        );
        let msg = body(line);
        if msg.starts_with("CEF:") {
            cefs += 1;
            let (header, ext) = cef::parse(msg).unwrap();
            assert_eq!(header[4], "family_snooping");
            assert_eq!(header[6], "8");
            let get = |k: &str| {
                ext.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            // CEF has no escape for a tab: it travels as a space.
            assert_eq!(
                get("msg"),
                Some(al.summary.replace('\t', " ").as_str()),
                "{msg}"
            );
            assert_eq!(get("suser"), Some("u0412"));
            assert_eq!(get("src"), Some("10.0.0.7"));
            assert_eq!(get("externalId"), Some("a1b2c3"));
            assert_eq!(get("cs1"), Some("p1,p2"));
            assert_eq!(get("start"), Some("1795000000000"));
            assert_eq!(get("cnt"), Some("3"));
        } else {
            leefs += 1;
            let (header, attrs) = leef::parse(msg).unwrap();
            assert_eq!(header[4], "family_snooping");
            let get = |k: &str| {
                attrs
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("msg"), Some(al.summary.as_str()), "{msg}");
            assert_eq!(get("usrName"), Some("u0412"));
            assert_eq!(get("sev"), Some("8"));
            assert_eq!(get("patientIds"), Some("p1,p2"));
            assert_eq!(get("alertId"), Some("a1b2c3"));
        }
    }
    assert_eq!((cefs, leefs), (2, 2));
}

#[test]
fn a_run_delivers_each_new_alert_to_rsyslog_once() {
    let dir = tempfile::tempdir().unwrap();
    let rs = Rsyslog::start(dir.path());
    let h = dir.path().join("h");
    gen_hospital(&h, "20000", "3", "5");
    let target = Target::local(dir.path(), &[&h.join("logs"), &h.join("syslog")]);
    let refdir = h.join("ref").display().to_string();
    let sink = format!("cef+tcp://127.0.0.1:{}", rs.tcp);
    target.run(&["--ref", &refdir, "--sink", &sink]);
    let alerts = target.scalar("SELECT count(*) FROM alerts") as usize;
    assert!(alerts > 0);
    let lines = rs.received(alerts);
    assert_eq!(lines.len(), alerts);
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| {
            let (_, ext) = cef::parse(body(l)).unwrap();
            ext.into_iter().find(|(k, _)| k == "externalId").unwrap().1
        })
        .collect();
    ids.sort();
    let stored: Vec<String> = target
        .query("SELECT alert_id FROM alerts ORDER BY alert_id")
        .iter()
        .map(|r| r["alert_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, stored);
    // A run with nothing new sends nothing more.
    target.run(&["--ref", &refdir, "--sink", &sink]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(rs.received(alerts + 1).len(), alerts);
}

#[test]
fn cef_over_tls_reaches_rsyslog_and_an_untrusted_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (rs, ca) = Rsyslog::start_tls(dir.path());
    let al = tricky_alert();
    let spec = SinkSpec::parse(&format!("cef+tls://127.0.0.1:{}", rs.tcp)).unwrap();
    let trusted = TlsSettings {
        ca_file: Some(ca.clone()),
    };
    siem::deliver(
        std::slice::from_ref(&spec),
        std::slice::from_ref(&al),
        &trusted,
    )
    .unwrap();
    let lines = rs.received(1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (_, ext) = cef::parse(body(&lines[0])).unwrap();
    assert!(ext.iter().any(|(k, v)| k == "externalId" && v == "a1b2c3"));
    // The system's roots do not vouch for the test CA: nothing is sent.
    let err = siem::deliver(&[spec], &[al], &TlsSettings::default()).unwrap_err();
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    assert_eq!(rs.received(2).len(), 1);
}
