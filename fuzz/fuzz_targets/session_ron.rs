//! Any text as a session file: parsed (with migration), reported as the CLI and the GUI show
//! it, and written again: what a session writes, it reads back to the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantbench::session::Session;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(session) = Session::from_ron(text) else {
        return;
    };
    let _ = quantbench::report::to_text(&session);
    let _ = quantbench::report::to_csv(&session);
    let _ = quantbench::report::to_markdown(&session);
    let backend = quantbench::report::primary_backend(&session);
    let _ = quantbench::session::pareto_front(&quantbench::report::tradeoff_points(
        &session, backend,
    ));
    let written = session.to_ron().expect("a parsed session serializes");
    let again = Session::from_ron(&written).expect("what a session writes, it reads");
    assert_eq!(again.to_ron().expect("serializes"), written);
});
