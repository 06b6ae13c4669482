//! The ipvsadm grammar against arbitrary command lines: whatever the words, parsing gives an
//! invocation or an error with a message and a non-zero exit code; it never panics.

use proptest::prelude::*;
use rvsadm::parse::parse;

/// Words an ipvsadm command line is made of, plus noise.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-A".to_string()),
        Just("-E".to_string()),
        Just("-a".to_string()),
        Just("-e".to_string()),
        Just("-d".to_string()),
        Just("-D".to_string()),
        Just("-L".to_string()),
        Just("-n".to_string()),
        Just("-t".to_string()),
        Just("-u".to_string()),
        Just("-r".to_string()),
        Just("-s".to_string()),
        Just("-p".to_string()),
        Just("-w".to_string()),
        Just("-x".to_string()),
        Just("-b".to_string()),
        Just("--set".to_string()),
        Just("--add-rule".to_string()),
        Just("--match".to_string()),
        Just("127.0.0.1:80".to_string()),
        Just("[::1]:80".to_string()),
        Just("wrr".to_string()),
        Just("70000".to_string()),
        Just("sh-port".to_string()),
        "[-a-z0-9:.\\[\\]=]{0,12}",
        "\\PC{0,8}",
    ]
}

proptest! {
    #[test]
    fn any_command_line_parses_or_fails_cleanly(argv in prop::collection::vec(word(), 0..8)) {
        let mut full = vec!["rvsadm".to_string()];
        full.extend(argv);
        if let Err(e) = parse(&full) {
            prop_assert!(e.code != 0);
            prop_assert!(!e.message.is_empty());
        }
    }
}
