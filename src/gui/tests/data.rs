//! Data in the window: results measured on other data (the photo folder is in `walk.rs`).

use super::*;

/// Changing the preprocessing after results exist marks those results as measured on other
/// data; their figures are kept as they were, not relabelled.
#[test]
fn results_measured_before_a_preprocessing_change_say_other_data() {
    let mut h = harness();
    add_and_run(&mut h);
    assert!(h.query_by_label("other data").is_none());
    let before = h.state().session.as_ref().unwrap().experiments.clone();
    let mut desc = before[1].result.data.as_ref().unwrap().desc.clone();
    desc.preprocess.mean = vec![3.0];
    h.state_mut()
        .apply(AppCommand::ApplyDatasetDesc(Box::new(desc)));
    run_until_idle(&mut h);
    assert_eq!(h.query_all_by_label("other data").count(), 2);
    assert_eq!(h.state().session.as_ref().unwrap().experiments, before);
}
