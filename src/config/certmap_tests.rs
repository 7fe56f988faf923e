//! Tests of the certmap.conf parser and the mapping: the reference §4 example, every error
//! kind with its exact file:line, `FROMATTR=TOATTR`, escaping of hostile subject values,
//! missing components, issuer look-up and the default fallback.

use super::*;

const EXAMPLE: &str = "\
certmap default         default
default:DNComps
default:FilterComps     e=mail
certmap corp            CN=Corp Issuing CA,O=Siroe,C=US
corp:DNComps            o,c
corp:FilterComps        ou=uid
corp:verifycert         on
";

#[track_caller]
fn ok(text: &str) -> (CertMaps, Vec<String>) {
    match parse(Path::new("/etc/mmp/certmap.conf"), "certmap.conf", text) {
        Ok((maps, warnings)) => (maps, warnings.iter().map(ToString::to_string).collect()),
        Err(errors) => panic!("unexpected errors: {errors:#?}"),
    }
}

#[track_caller]
fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("/etc/mmp/certmap.conf"), "certmap.conf", text) {
        Ok((maps, _)) => panic!("expected errors, got {maps:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// RDNs in certificate (ASN.1) order from a DN string written most specific first.
fn rdns(dn: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = dn
        .split(", ")
        .filter_map(|rdn| rdn.split_once('='))
        .map(|(a, v)| (a.to_string(), v.to_string()))
        .collect();
    out.reverse();
    out
}

fn comp(from: &str, to: &str) -> Comp {
    Comp {
        from: from.into(),
        to: to.into(),
    }
}

#[test]
fn reference_example_parses() {
    let (maps, warnings) = ok(EXAMPLE);
    assert_eq!(warnings, Vec::<String>::new());
    assert_eq!(
        maps.default,
        CertMap {
            name: "default".into(),
            dn_comps: Comps::Empty,
            filter_comps: Comps::List(vec![comp("e", "mail")]),
            verify_cert: false,
            cmap_ldap_attr: None,
        }
    );
    assert_eq!(maps.by_issuer.len(), 1);
    let (issuer, corp) = &maps.by_issuer[0];
    assert_eq!(issuer, "CN=Corp Issuing CA,O=Siroe,C=US");
    assert_eq!(corp.name, "corp");
    assert_eq!(
        corp.dn_comps,
        Comps::List(vec![comp("o", "o"), comp("c", "c")])
    );
    assert_eq!(corp.filter_comps, Comps::List(vec![comp("ou", "uid")]));
    assert!(corp.verify_cert);
}

#[test]
fn component_lists() {
    let cases: &[(&str, Comps)] = &[
        ("", Comps::Empty),
        ("ou", Comps::List(vec![comp("ou", "ou")])),
        ("ou=uid", Comps::List(vec![comp("ou", "uid")])),
        ("e", Comps::List(vec![comp("e", "mail")])),
        ("E", Comps::List(vec![comp("E", "mail")])),
        ("o, c", Comps::List(vec![comp("o", "o"), comp("c", "c")])),
        (
            "o c\t,ou",
            Comps::List(vec![comp("o", "o"), comp("c", "c"), comp("ou", "ou")]),
        ),
        (
            "cn,ou=uid,e=mail",
            Comps::List(vec![comp("cn", "cn"), comp("ou", "uid"), comp("e", "mail")]),
        ),
        ("2.5.4.3=cn", Comps::List(vec![comp("2.5.4.3", "cn")])),
    ];
    for (value, want) in cases {
        assert_eq!(comps(value).as_ref(), Ok(want), "{value:?}");
    }
    for bad in ["=uid", "ou=", "ou=uid=x", "o(u", "*", "1..2", ","] {
        assert!(comps(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn errors_carry_file_and_line() {
    const D: &str = "certmap default default\n";
    let cases: &[(String, &str)] = &[
        (format!("{D}corp:DNComps o\ncertmap corp CN=CA\n"),
         "certmap.conf:2: property line before certmap corp (line 3); put the certmap line first"),
        (format!("{D}corp:DNComps o\n"),
         "certmap.conf:2: unknown map \"corp\" (no certmap corp ISSUERDN line)"),
        (format!("{D}default:Foo bar\n"),
         "certmap.conf:2: unknown certmap property \"Foo\" (expected DNComps, FilterComps, verifycert or CmapLdapAttr)"),
        (format!("{D}default:library /opt/lib/libmap.so\n"),
         "certmap.conf:2: library: certmap plug-ins are not supported (the Sun MMP never loaded them, and \
          mmp cannot); express the mapping with FROMATTR=TOATTR items in DNComps or FilterComps, e.g. \
          NAME:FilterComps ou=uid"),
        (format!("{D}default:InitFn plugin_init_fn\n"),
         "certmap.conf:2: InitFn: certmap plug-ins are not supported (the Sun MMP never loaded them, and \
          mmp cannot); express the mapping with FROMATTR=TOATTR items in DNComps or FilterComps, e.g. \
          NAME:FilterComps ou=uid"),
        (format!("{D}default:FilterComps ou=\n"),
         "certmap.conf:2: FilterComps: bad component \"ou=\": expected ATTR or FROMATTR=TOATTR"),
        (format!("{D}default:DNComps o,(c)\n"),
         "certmap.conf:2: DNComps: bad component \"(c)\": expected ATTR or FROMATTR=TOATTR"),
        (format!("{D}default:verifycert sometimes\n"),
         "certmap.conf:2: verifycert: expected on or off, got \"sometimes\""),
        (format!("{D}default:CmapLdapAttr cert subject\n"),
         "certmap.conf:2: CmapLdapAttr: expected an attribute name, got \"cert subject\""),
        (format!("{D}certmap corp\n"),
         "certmap.conf:2: expected certmap NAME ISSUERDN (a name and the issuer's DN)"),
        (format!("{D}certmap co:rp CN=CA\n"), "certmap.conf:2: map name \"co:rp\" contains ':'"),
        (format!("{D}certmap corp CN=CA\ncertmap corp CN=Other\n"),
         "certmap.conf:3: map \"corp\" already started at line 2"),
        (format!("{D}certmap a CN=CA\ncertmap b CN=CA\n"),
         "certmap.conf:3: issuer \"CN=CA\" already has map \"a\" (line 2)"),
        (format!("{D}certmap other default\n"),
         "certmap.conf:2: the map named default must have the issuer default (certmap default default), and only it"),
        ("certmap default CN=CA\n".to_string(),
         "certmap.conf:1: the map named default must have the issuer default (certmap default default), and only it"),
        (format!("{D}vdmap x 192.0.2.1\n"),
         "certmap.conf:2: expected certmap NAME ISSUERDN or NAME:property value (the first word has no ':')"),
        (format!("{D}default:DNComps \"o\n"),
         "certmap.conf:2: value spans lines; join it into one line (it starts with \" but does not end with one)"),
    ];
    for (text, want) in cases {
        let got = errors(text);
        let got: Vec<&String> = got
            .iter()
            .filter(|e| !e.starts_with("certmap.conf: "))
            .collect();
        assert_eq!(got, [want], "{text:?}");
    }
}

#[test]
fn missing_default_map_is_an_error() {
    assert_eq!(
        errors("# nothing\ncertmap corp CN=CA\ncorp:FilterComps ou=uid\n"),
        ["certmap.conf: no certmap default default line: the default map is required"]
    );
    assert_eq!(
        errors("")[0],
        "certmap.conf: no certmap default default line: the default map is required"
    );
}

#[test]
fn repeats_warn_and_the_last_wins() {
    let (maps, warnings) = ok(
        "certmap default default\ndefault:FilterComps cn\ndefault:filtercomps uid\n\
                               default:VerifyCert\ndefault:CmapLdapAttr certSubjectDN\n",
    );
    assert_eq!(
        warnings,
        ["certmap.conf:3: FilterComps: also set for default at line 2; the last line wins"]
    );
    assert_eq!(
        maps.default.filter_comps,
        Comps::List(vec![comp("uid", "uid")])
    );
    assert!(maps.default.verify_cert, "an empty verifycert means on");
    assert_eq!(
        maps.default.cmap_ldap_attr.as_deref(),
        Some("certSubjectDN")
    );
}

#[test]
fn issuer_look_up_is_exact_with_default_fallback() {
    let (maps, _) = ok(EXAMPLE);
    assert_eq!(maps.map_for("CN=Corp Issuing CA,O=Siroe,C=US").name, "corp");
    for other in [
        "CN=Corp Issuing CA, O=Siroe, C=US",
        "cn=Corp Issuing CA,o=Siroe,c=US",
        "CN=Other CA",
        "",
        "default",
    ] {
        assert_eq!(maps.map_for(other).name, "default", "{other:?}");
    }
    let issuer = rdns("CN=Corp Issuing CA, O=Siroe, C=US");
    assert_eq!(
        maps.map_for_name(&issuer).name,
        "corp",
        "the RFC 4514 spelling matches"
    );
    let (spaced, _) = ok("certmap default default\ncertmap sun o=Sun, c=US\n");
    assert_eq!(
        spaced.map_for_name(&rdns("o=Sun, c=US")).name,
        "sun",
        "the spaced spelling matches"
    );
    assert_eq!(spaced.map_for("o=Sun,c=US").name, "default");
    assert_eq!(
        maps.map_for_name(&rdns("CN=Other CA, O=Siroe")).name,
        "default"
    );
}

/// Issue 9 item 15: login.rs matched issuers by `replace(',', ", ")`, which also spaced the
/// escaped comma inside a value, so a spaced `certmap` line for such an issuer never matched.
#[test]
fn issuer_with_an_escaped_comma_matches_in_both_spellings() {
    let (maps, _) = ok("certmap default default\n\
                        certmap corp CN=Corp\\, Inc. CA, O=Siroe, C=US\n\
                        certmap tight CN=Tight\\, Ltd CA,O=Siroe\n");
    let cert_rfc4514 = "CN=Corp\\, Inc. CA,O=Siroe,C=US";
    let display = "C=US, O=Siroe, CN=Corp, Inc. CA";
    assert_eq!(maps.map_for_issuer(cert_rfc4514, display).name, "corp");
    assert_eq!(
        maps.map_for_issuer("CN=Tight\\, Ltd CA,O=Siroe", "O=Siroe, CN=Tight, Ltd CA")
            .name,
        "tight"
    );
    assert_eq!(
        maps.map_for_issuer("CN=Corp\\, Inc. CA,O=Other", "O=Other, CN=Corp, Inc. CA")
            .name,
        "default"
    );
    let (by_display, _) = ok("certmap default default\ncertmap x C=US, O=Siroe, CN=X\n");
    assert_eq!(
        by_display
            .map_for_issuer("CN=X,O=Siroe,C=US", "C=US, O=Siroe, CN=X")
            .name,
        "x",
        "x509-parser's display form still matches"
    );
}

#[test]
fn dn_forms_and_escaping() {
    let issuer = rdns("CN=Doe+Sons, O=A;B, C=US");
    assert_eq!(
        dn_forms(&issuer),
        [
            "CN=Doe\\+Sons,O=A\\;B,C=US".to_string(),
            "CN=Doe\\+Sons, O=A\\;B, C=US".to_string()
        ]
    );
    let cases = [
        ("plain", "plain"),
        ("a,b", "a\\,b"),
        ("\"q\"", "\\\"q\\\""),
        ("<x>", "\\<x\\>"),
        ("back\\slash", "back\\\\slash"),
        ("#lead", "\\#lead"),
        ("mid#", "mid#"),
        (" both ", "\\ both\\ "),
        ("nul\0", "nul\\00"),
        ("Jörg", "Jörg"),
    ];
    for (value, want) in cases {
        assert_eq!(escape_dn_value(value), want, "{value:?}");
    }
}

fn search(text: &str, issuer: &str, subject: &str) -> Result<CertSearch, Unmapped> {
    let (maps, _) = ok(text);
    maps.search(maps.map_for(issuer), &rdns(subject), "o=internet")
}

#[test]
fn searches_built_from_the_subject() {
    let corp = "CN=Corp Issuing CA,O=Siroe,C=US";
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        // (issuer, subject, base, filter)
        (
            "CN=Other",
            "CN=Pilar Lorca, E=pilar@siroe.test, O=Siroe, C=US",
            Some("o=internet"),
            "(mail=pilar@siroe.test)",
        ),
        (
            corp,
            "CN=Pilar Lorca, OU=pilar, O=Siroe, C=US",
            Some("o=Siroe,c=US"),
            "(uid=pilar)",
        ),
        // a component missing from the subject is skipped
        (
            corp,
            "CN=Pilar Lorca, OU=pilar, O=Siroe",
            Some("o=Siroe"),
            "(uid=pilar)",
        ),
        // metacharacters never widen the filter, and stay values in the base DN
        (
            corp,
            "OU=*, O=Siroe, C=US",
            Some("o=Siroe,c=US"),
            "(uid=\\2a)",
        ),
        (
            corp,
            "OU=x)(uid=*, O=A\\B, C=US",
            Some("o=A\\\\B,c=US"),
            "(uid=x\\29\\28uid=\\2a)",
        ),
        (
            corp,
            "OU=a\\2a, O=S+T, C=US",
            Some("o=S\\+T,c=US"),
            "(uid=a\\5c2a)",
        ),
    ];
    for (issuer, subject, base, filter) in cases {
        let got = search(EXAMPLE, issuer, subject);
        let want = CertSearch {
            base: base.map(str::to_string),
            filter: filter.to_string(),
            verify_cert: *issuer == corp,
            cmap: None,
        };
        assert_eq!(got, Ok(want), "{subject:?}");
    }
}

#[test]
fn seed_example_pilar() {
    let got = search(
        "certmap default default\ndefault:FilterComps ou=uid\n",
        "x",
        "cn=Pilar Lorca, ou=pilar",
    );
    assert_eq!(
        got.map(|s| (s.base, s.filter)),
        Ok((None, "(uid=pilar)".to_string()))
    );
}

#[test]
fn absent_empty_and_several_components() {
    let absent = search("certmap default default\n", "x", "CN=a, O=b");
    assert_eq!(
        absent.map(|s| (s.base, s.filter)),
        Ok((None, "(objectclass=*)".to_string()))
    );
    let empty = search(
        "certmap default default\ndefault:DNComps\ndefault:FilterComps\n",
        "x",
        "CN=a",
    );
    assert_eq!(
        empty.map(|s| (s.base, s.filter)),
        Ok((Some("o=internet".into()), "(objectclass=*)".into()))
    );
    // Several: DN-string order of the subject, not the order of the list; repeated OUs
    // each give a term; e and mail are one attribute.
    let text = "certmap default default\ndefault:DNComps ou, o\ndefault:FilterComps mail,cn=commonName uid\n";
    let got = search(
        text,
        "x",
        "UID=pl, CN=Pilar, emailAddress=p@s.test, OU=a, OU=b, O=S",
    );
    assert_eq!(
        got.map(|s| (s.base, s.filter)),
        Ok((
            Some("ou=a,ou=b,o=S".into()),
            "(&(uid=pl)(commonName=Pilar)(mail=p@s.test))".into()
        ))
    );
}

#[test]
fn a_subject_without_any_listed_component_maps_to_nobody() {
    let text = "certmap default default\ndefault:DNComps o\ndefault:FilterComps e=mail,uid\n";
    let got = search(text, "x", "CN=Pilar, O=S");
    let want = Unmapped {
        property: "FilterComps",
        wanted: vec!["e".into(), "uid".into()],
    };
    assert_eq!(got, Err(want.clone()));
    assert_eq!(
        want.to_string(),
        "the certificate subject has none of the FilterComps components e,uid"
    );
    let got = search(text, "x", "CN=Pilar, E=p@s.test");
    assert_eq!(got.map_err(|u| u.property), Err("DNComps"));
}

#[test]
fn cmap_attribute_carries_the_whole_subject() {
    let text =
        "certmap default default\ndefault:CmapLdapAttr certSubjectDN\ndefault:FilterComps uid\n";
    let got = search(text, "x", "UID=p*, O=Siroe (HQ), C=US").unwrap_or_else(|u| panic!("{u}"));
    assert_eq!(
        got.cmap,
        Some(("certSubjectDN".into(), "UID=p*,O=Siroe (HQ),C=US".into()))
    );
    assert_eq!(
        got.cmap_filter().as_deref(),
        Some("(certSubjectDN=UID=p\\2a,O=Siroe \\28HQ\\29,C=US)")
    );
    assert_eq!(got.filter, "(uid=p\\2a)");
}

#[test]
fn sample_file_parses_cleanly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/mmp/certmap.conf");
    let (maps, warnings) = match load(&path) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{errors:#?}"),
    };
    assert_eq!(warnings, []);
    assert_eq!(
        maps.default.filter_comps,
        Comps::List(vec![comp("e", "mail")])
    );
    let corp = maps.map_for("CN=Corp Issuing CA,O=Siroe,C=US");
    assert_eq!((corp.name.as_str(), corp.verify_cert), ("corp", true));
}

#[test]
fn load_reports_an_unreadable_file() {
    match load(Path::new("/nonexistent/certmap.conf")) {
        Ok(loaded) => panic!("loaded {loaded:?}"),
        Err(errors) => {
            assert_eq!(errors.len(), 1);
            assert!(
                errors[0]
                    .to_string()
                    .starts_with("/nonexistent/certmap.conf: cannot read: "),
                "{}",
                errors[0]
            );
        }
    }
}
