//! The search in the window: Start, its steps and candidates as they come, the choice and
//! why, Export best; Stop and Resume.

use super::*;
use crate::gui::CentralView;

fn open_tune(h: &mut Harness<'static, WorkbenchApp>) {
    h.state_mut().apply(AppCommand::SetView(CentralView::Tune));
    h.run_steps(2);
}

/// Top-1 of `e` on its first runtime.
fn top1(e: &Experiment) -> f64 {
    e.result.evals[0].report.top1.unwrap()
}

/// On MNIST (labelled: the goal offered is a top-1 drop of at most 0.01), Start runs the
/// search to its end: every candidate lands in the session, the chosen one meets the goal
/// and is selected with why it won, and Export best writes it.
#[test]
fn the_search_finds_a_model_that_meets_the_goal_and_exports_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness();
    open_tune(&mut h);
    click(&mut h, "Start");
    run_until_idle(&mut h);
    let search = &h.state().search;
    let (chosen, why) = search.chosen.clone().expect("the search chose a candidate");
    assert!(why.starts_with("chosen: candidate"), "{why}");
    assert!(search
        .log
        .iter()
        .any(|l| l.starts_with("goal: top-1 at most 0.01 below float")));
    assert!(search.candidates.len() >= 5, "{:?}", search.log);
    let session = h.state().session.clone().unwrap();
    for id in &search.candidates {
        assert!(
            session.get(*id).is_some(),
            "candidate {id} is in the session"
        );
    }
    let float = top1(session.float().unwrap());
    let best = session.get(chosen).unwrap();
    assert!(top1(best) >= float - 0.01, "{} against {float}", top1(best));
    assert_eq!(h.state().selected, Some(chosen));
    h.get_by_label_contains(&format!("Chosen: {chosen}."));
    let out = dir.path().join("best.onnx");
    choose_path(&mut h, "Export best…", &out);
    run_until_idle(&mut h);
    let written = quantbench::onnx::read_model(&out).expect("Export best wrote a model");
    assert!(quantbench::onnx::graph(&written)
        .node
        .iter()
        .any(|n| n.op_type.ends_with("QuantizeLinear") || n.op_type == "Cast"));
}

/// Stop keeps what was measured; Resume goes on and measures none of it again.
#[test]
fn a_stopped_search_resumes_without_measuring_again() {
    let mut h = harness();
    // The search held as it starts its fourth quantization: Stop then comes mid-search on any
    // machine, however fast (MNIST's candidates take a fraction of a second each).
    let gate = Arc::new(Gate::default());
    gate.set_open(true);
    let quantizations = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (g, q) = (gate.clone(), quantizations.clone());
    watch_frames(move |what| {
        if what == "quantize" && q.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 3 {
            g.set_open(false);
        }
        g.pass(what);
    });
    open_tune(&mut h);
    click(&mut h, "Start");
    assert_eq!(gate.held_at(), "quantize");
    let deadline = Instant::now() + Duration::from_secs(60);
    while h.state().search.candidates.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the measured candidates did not show"
        );
        h.state_mut().wait_for_work(Duration::from_secs(5));
        h.run_steps(1);
    }
    click(&mut h, "Stop");
    gate.set_open(true);
    run_until_idle(&mut h);
    assert!(h.state().search.chosen.is_none());
    let measured: Vec<ExperimentId> = experiments(&h)
        .iter()
        .filter(|e| e.is_done())
        .map(|e| e.id)
        .collect();
    assert!(measured.len() >= 3, "{measured:?}");
    assert!(
        h.state()
            .messages
            .iter()
            .any(|(_, m)| m.contains("search stopped")),
        "{:?}",
        h.state().messages
    );
    click(&mut h, "Resume");
    run_until_idle(&mut h);
    let search = &h.state().search;
    assert!(search.chosen.is_some(), "{:?}", search.log);
    let reused = search
        .log
        .iter()
        .filter(|l| l.contains("(from the session)"))
        .count();
    // Every quantized candidate measured before the stop is reused (float is reused too, but
    // says so on its own line).
    assert!(
        reused + 1 >= measured.len(),
        "{reused} reused of {measured:?}: {:?}",
        search.log
    );
}
