"""model_evaluation, its blocking champion gate, and champion_model (the MLflow alias)."""

import json
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from anomaly_pipeline.defs.resources import WarehouseResource, active_mlflow_run

GATE_CHECK = "champion_gate"


@dg.asset(group_name="evaluation", required_resource_keys={"mlflow"}, kinds={"mlflow"})
def model_evaluation(context: dg.AssetExecutionContext, training_set: dict[str, Any],
                     baseline_models: list[dict[str, Any]],
                     anomaly_model: list[dict[str, Any]]) -> dict[str, Any]:
    """Every candidate and the current champion, scored on the same held-out (newest) days.

    The report (metrics with bootstrap CIs, threshold tables, confusion matrices, per-type recall,
    plots) is shown here as Markdown and logged to MLflow; with no labels it says that quality
    cannot be measured and shows distributions and alert volumes instead.
    """
    import mlflow
    import polars as pl

    from anomaly_pipeline.bundle import ScoringBundle
    from anomaly_pipeline.evaluation import (
        compare_detectors,
        evaluate_detector,
        pick_challenger,
        render_report,
        save_evaluations,
        write_report,
    )
    from anomaly_pipeline.model_registry import champion_bundle_dir
    from anomaly_pipeline.scoring import evaluation_frame
    from anomaly_pipeline.training_set import TrainingSetInfo

    info = TrainingSetInfo.read(training_set["directory"])
    holdout = pl.read_parquet(info.path("holdout"))
    home_artifacts = Path(info.directory).parent.parent
    champion = champion_bundle_dir(context.resources.mlflow.tracking_uri,
                                   home_artifacts / "champion_cache")
    champion_scores, champion_eval = None, None
    if champion is not None:
        champion_bundle = ScoringBundle.load(champion[1])
        champion_scores = evaluation_frame(champion_bundle, holdout)
        champion_eval = evaluate_detector(champion_scores,
                                          threshold=champion_bundle.threshold_points)
    evaluations = {}
    for ref in [*baseline_models, *anomaly_model]:
        bundle = ScoringBundle.load(ref["model_dir"])
        previous = champion_scores.select("user_key", "event_day", "score") \
            if champion_scores is not None else None
        evaluations[ref["kind"]] = evaluate_detector(
            evaluation_frame(bundle, holdout), threshold=bundle.threshold_points, previous=previous)
    choice = pick_challenger(evaluations)
    report_dir = home_artifacts / "evaluations" / context.run_id
    shown = {**evaluations, **({f"champion (v{champion[0].version})": champion_eval}
                               if champion_eval is not None else {})}
    paths = write_report(report_dir, shown, title=f"Holdout {info.days['holdout'][0]} – "
                                                  f"{info.days['holdout'][-1]}")
    save_evaluations(report_dir / "candidates.json", evaluations)
    if champion_eval is not None:
        save_evaluations(report_dir / "champion.json", {"champion": champion_eval})
    with active_mlflow_run(context.resources.mlflow):
        for name, evaluation in evaluations.items():
            if evaluation.pr_auc is not None:
                mlflow.log_metrics({f"{name}.pr_auc": evaluation.pr_auc.value,
                                    f"{name}.roc_auc": evaluation.roc_auc.value})
        mlflow.log_artifacts(str(report_dir), artifact_path="evaluation")
    by_kind = {ref["kind"]: ref for ref in [*baseline_models, *anomaly_model]}
    context.add_output_metadata({
        "report": dg.MetadataValue.md(render_report(shown, title="Model evaluation")),
        "summary": dg.MetadataValue.md(str(compare_detectors(shown))),
        "report_path": dg.MetadataValue.path(str(paths.report)),
        "challenger": choice.name or "none", "challenger_reason": choice.reason,
        "champion_version": str(champion[0].version) if champion else "none"})
    return {"report_dir": str(report_dir), "challenger": by_kind.get(choice.name),
            "challenger_reason": choice.reason,
            "champion_version": str(champion[0].version) if champion else None}


class GateConfig(dg.Config):
    min_pr_auc_gain: float = Field(default=0.01, description="PR-AUC the challenger must add.")
    max_type_recall_drop: float = Field(default=0.05, description="Largest tolerated recall drop "
                                        "on any anomaly type.")


@dg.asset_check(asset=model_evaluation, name=GATE_CHECK, blocking=True,
                description="Promote the challenger only if it beats the champion's PR-AUC by the "
                            "margin and regresses on no anomaly type beyond the tolerance.")
def champion_gate(config: GateConfig, model_evaluation: dict[str, Any]) -> dg.AssetCheckResult:
    from anomaly_pipeline.evaluation import decide_promotion, load_evaluations

    report_dir = Path(model_evaluation["report_dir"])
    challenger = model_evaluation["challenger"]
    if challenger is None:
        return dg.AssetCheckResult(passed=False, description="no challenger: "
                                   + model_evaluation["challenger_reason"])
    candidates = load_evaluations(report_dir / "candidates.json")
    champion_file = report_dir / "champion.json"
    champion = load_evaluations(champion_file)["champion"] if champion_file.exists() else None
    decision = decide_promotion(candidates[challenger["kind"]], champion,
                                min_pr_auc_gain=config.min_pr_auc_gain,
                                max_type_recall_drop=config.max_type_recall_drop)
    return dg.AssetCheckResult(passed=decision.promote, description=decision.reason, metadata={
        "challenger": f"{challenger['kind']} v{challenger['version']}",
        "champion": model_evaluation["champion_version"] or "none",
        "details": dg.MetadataValue.json(json.loads(json.dumps(decision.details, default=str)))})


@dg.asset(group_name="evaluation", deps=[model_evaluation], kinds={"mlflow"},
          description="The registered model version that scores production days (MLflow alias "
                      "'champion'); only materialised when the champion gate passes.")
def champion_model(context: dg.AssetExecutionContext, model_evaluation: dict[str, Any],
                   warehouse: WarehouseResource) -> dict[str, Any]:
    from anomaly_pipeline.model_registry import REGISTERED_MODEL, set_champion

    challenger = model_evaluation["challenger"]
    set_champion(warehouse.data_home.mlflow_tracking_uri, challenger["version"])
    context.add_output_metadata({"model": REGISTERED_MODEL, "version": challenger["version"],
                                 "kind": challenger["kind"],
                                 "previous_version": model_evaluation["champion_version"] or "none"})
    return {"name": REGISTERED_MODEL, **challenger}
