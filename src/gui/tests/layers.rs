//! The Layers view: variants by clicking (a layer float, a range pinned) and the calibration inspector.

use super::*;

/// Clicks the first enabled widget labelled `label` (a table has one per row).
fn click_first_enabled(h: &mut Harness<'static, WorkbenchApp>, label: &str) {
    let first = |h: &Harness<'static, WorkbenchApp>| {
        h.get_all_by_label(label)
            .position(|n| !n.accesskit_node().is_disabled())
            .unwrap_or_else(|| panic!("no enabled '{label}'"))
    };
    let k = first(h);
    h.get_all_by_label(label).nth(k).unwrap().hover();
    h.run_steps(1);
    h.get_all_by_label(label).nth(k).unwrap().click();
    h.run_steps(1);
}

/// Mixed precision by clicking: in the Layers view, Float on a layer adds a variant of the
/// experiment with that layer kept float and runs it at once, on the parent's calibration; the
/// variant names its parent. The calibration inspector opens on a tensor, and Pin adds a
/// variant whose quantized model uses the pinned range.
#[test]
fn a_layer_switched_to_float_runs_as_a_variant_on_the_same_calibration() {
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut()
        .apply(AppCommand::Select(Some(ExperimentId(2))));
    h.state_mut()
        .apply(AppCommand::SetView(crate::gui::CentralView::Layers));
    h.run();
    assert!(layers_title(&h).starts_with("2 "), "{}", layers_title(&h));
    click_first_enabled(&mut h, "Float");
    run_until_idle(&mut h);
    assert_eq!(h.state().selected, Some(ExperimentId(2)), "the view stays");
    let session = h.state().session.clone().unwrap();
    assert_eq!(session.experiments.len(), 3);
    let (parent, child) = (&session.experiments[1], &session.experiments[2]);
    assert_eq!(child.parent, Some(parent.id));
    let kept = &child.config.as_ref().unwrap().keep_float;
    assert_eq!(kept.len(), 1);
    assert!(child.result.error.is_none(), "{:?}", child.result.error);
    assert!(!child.result.evals.is_empty());
    let report = child.result.quantize.as_ref().unwrap();
    assert_eq!(report.calibration_samples, 0, "{:?}", report.notes);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("calibration reused")),
        "{:?}",
        report.notes
    );
    assert!(
        report.counts.nodes_kept_float >= 1,
        "{kept:?} {:?}",
        report.counts
    );
    // The layer kept float errs less alone (its weights and inputs are float now).
    let isolated = |e: &Experiment| {
        e.result
            .layers
            .iter()
            .find(|l| l.node == kept[0])
            .and_then(|l| l.isolated.as_ref())
            .map(|m| m.sqnr_db)
    };
    let (before, after) = (isolated(parent).unwrap(), isolated(child));
    assert!(
        after.is_none_or(|a| a > before),
        "{}: isolated {before} dB -> {after:?}",
        kept[0]
    );

    // The inspector, on the parent's settings, for the first tensor in graph order (the
    // model's input, which int8 calibrates).
    h.state_mut()
        .apply(AppCommand::Select(Some(ExperimentId(2))));
    h.run();
    click(&mut h, "order");
    h.run();
    click_first_enabled(&mut h, "Calibration");
    run_until_idle(&mut h);
    let (experiment, found) = h
        .state()
        .inspection
        .clone()
        .unwrap_or_else(|| panic!("no inspection: {:?}", h.state().messages));
    assert_eq!(experiment, Some(ExperimentId(2)));
    assert_eq!(found.methods.len(), 5);
    assert_eq!(found.tensor, "Input3");
    assert!(found.pinnable);
    h.get_by_label_contains("Calibration of");
    click_first_enabled(&mut h, "Pin");
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    assert_eq!(session.experiments.len(), 4);
    let pinned = &session.experiments[3];
    assert_eq!(pinned.parent, Some(session.experiments[1].id));
    let config = pinned.config.as_ref().unwrap();
    assert_eq!(
        config.pinned_ranges.get(&found.tensor),
        Some(&found.methods[0].range)
    );
    assert!(pinned.result.error.is_none(), "{:?}", pinned.result.error);
}

/// The title the Layers view shows now (a label's text is its accesskit value).
/// The experiment the Layers view shows, as its chooser says it ("2 int8 per-channel …").
fn layers_title(h: &Harness<'static, WorkbenchApp>) -> String {
    h.get_by_label_contains("Layers of")
        .accesskit_node()
        .value()
        .unwrap_or_default()
}

/// Float on a Layers row, then Pin in the inspector, each add a variant of the experiment
/// shown and run it; the view stays on that experiment both times, also where the rows have
/// shifted (the float baseline removed) so that its position is not its id.
#[test]
fn float_and_pin_on_a_layers_row_keep_the_view_on_that_experiment() {
    let mut h = harness();
    add_and_run(&mut h);
    choose_percentile_calibration(&mut h);
    h.state_mut().apply(AppCommand::AddExperiment);
    h.state_mut().apply(AppCommand::Run);
    run_until_idle(&mut h);
    // Back to the Model tab: the Settings tab has a "Calibration" of its own.
    h.state_mut().persisted.setup_tab = crate::gui::SetupTab::Model;
    h.state_mut()
        .apply(AppCommand::RemoveExperiment(ExperimentId(1)));
    let shown = ExperimentId(2);
    let name = h
        .state()
        .session
        .as_ref()
        .unwrap()
        .get(shown)
        .unwrap()
        .name
        .clone();
    h.state_mut().apply(AppCommand::Select(Some(shown)));
    h.state_mut()
        .apply(AppCommand::SetView(crate::gui::CentralView::Layers));
    h.run_steps(8);
    let title = format!("2 {name}");
    assert_eq!(layers_title(&h), title);

    click_first_enabled(&mut h, "Float");
    run_until_idle(&mut h);
    assert_eq!(layers_title(&h), title, "{:?}", h.state().messages);
    let session = h.state().session.clone().unwrap();
    let floated = session.experiments.last().unwrap();
    assert_eq!(floated.parent, Some(shown));
    assert!(floated.is_done() && floated.result.error.is_none());

    // In graph order the first row is the model's input, which int8 calibrates.
    click(&mut h, "order");
    h.run();
    click_first_enabled(&mut h, "Calibration");
    run_until_idle(&mut h);
    assert!(h.state().inspection.is_some(), "{:?}", h.state().messages);
    click_first_enabled(&mut h, "Pin");
    run_until_idle(&mut h);
    assert_eq!(layers_title(&h), title, "{:?}", h.state().messages);
    let session = h.state().session.clone().unwrap();
    let pinned = session.experiments.last().unwrap();
    assert_ne!(pinned.id, floated.id);
    assert_eq!(pinned.parent, Some(shown));
    assert!(!pinned.config.as_ref().unwrap().pinned_ranges.is_empty());
    assert_eq!(h.state().selected, Some(shown));
}

/// Ids start again in every session: opening another model forgets the inspector (whose Pin
/// would vary whatever experiment has that id now) and the selection.
#[test]
fn opening_another_model_forgets_the_inspector_and_the_selection() {
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut()
        .apply(AppCommand::Select(Some(ExperimentId(2))));
    h.state_mut().apply(AppCommand::InspectCalibration {
        experiment: Some(ExperimentId(2)),
        tensor: "Input3".into(),
    });
    run_until_idle(&mut h);
    assert!(h.state().inspection.is_some(), "{:?}", h.state().messages);
    open(&mut h, sample());
    assert!(h.state().inspection.is_none());
    assert_eq!(h.state().selected, None);
}

/// "Rank layers by sensitivity" runs as a job and keeps its ranking with the experiment; the
/// table sorts by it, and "Make the variant" keeps the top K float in a new experiment that
/// runs at once.
#[test]
fn sensitivity_ranks_the_layers_and_the_top_k_become_a_variant() {
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut()
        .apply(AppCommand::Select(Some(ExperimentId(2))));
    h.state_mut()
        .apply(AppCommand::SetView(crate::gui::CentralView::Layers));
    h.run_steps(2);
    click(&mut h, "Rank layers by sensitivity");
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    let e = session.get(ExperimentId(2)).unwrap();
    let report = e.result.sensitivity.clone().expect("the ranking is kept");
    let config = e.config.clone().unwrap();
    let model = quantbench::onnx::read_model(&sample()).unwrap();
    assert_eq!(
        report.ranking.len() + report.skipped.len(),
        quantbench::sensitivity::candidates(&model, &config).len()
    );
    // The table shows the rank column, the first row first.
    h.get_by_label("rank");
    h.get_by_label("float recovers");
    click(&mut h, "Make the variant");
    run_until_idle(&mut h);
    let session = h.state().session.clone().unwrap();
    let variant = session.experiments.last().unwrap();
    assert_eq!(variant.parent, Some(ExperimentId(2)));
    let kept = &variant.config.as_ref().unwrap().keep_float;
    let top: Vec<String> = report
        .ranking
        .iter()
        .take(3.min(report.ranking.len()))
        .map(|s| s.layer.clone())
        .collect();
    assert_eq!(kept, &top, "the default K is 3");
    assert!(variant.has_figures(), "{:?}", variant.result.error);
    assert_eq!(h.state().selected, Some(ExperimentId(2)), "the view stays");
}

/// The Speed-up view finds out (as a job) what still runs in float and why; a layer it names
/// opens the Layers view on that layer, for the same experiment.
#[test]
fn why_no_speed_up_names_layers_that_open_in_the_layers_view() {
    let mut h = harness();
    add_and_run(&mut h);
    h.state_mut()
        .apply(AppCommand::Select(Some(ExperimentId(2))));
    h.state_mut()
        .apply(AppCommand::SetView(crate::gui::CentralView::SpeedUp));
    h.run_steps(2);
    run_until_idle(&mut h);
    let found = match h.state().explanations.get(&ExperimentId(2)) {
        Some(Ok(found)) => found.clone(),
        other => panic!("no explanation: {other:?}"),
    };
    assert!(found.weighted_ops >= 2, "{found:?}");
    assert_eq!(found.int8_nodes.len(), found.int8_ops);
    h.get_by_label_contains(&format!(
        "{} of {} weighted ops",
        found.int8_ops, found.weighted_ops
    ));
    h.get_by_label("What to try");
    // The first layer named (an int8 unit or one still in float) opens in the Layers view.
    let named = found
        .float_ops
        .first()
        .map(|f| f.node.clone())
        .unwrap_or_else(|| found.int8_nodes[0].clone());
    if found.float_ops.is_empty() {
        click_contains(&mut h, "int8 node units");
        h.run_steps(2);
    }
    h.get_all_by_label(&named).next().unwrap().click();
    h.run_steps(3);
    assert_eq!(h.state().persisted.view, crate::gui::CentralView::Layers);
    assert_eq!(h.state().layer_focus.as_deref(), Some(named.as_str()));
    assert_eq!(h.state().selected, Some(ExperimentId(2)));
}
