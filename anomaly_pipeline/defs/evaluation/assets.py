"""model_evaluation, its blocking champion gate, and champion_model (the MLflow alias)."""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from pydantic import Field

from anomaly_pipeline.defs.resources import WarehouseResource, active_mlflow_run
from anomaly_pipeline.model_refs import (
    CandidateModel,
    EvaluationOutcome,
    RegisteredModel,
    TrainingSetInfo,
)
from anomaly_pipeline.paths import DataHome

GATE_CHECK = "champion_gate"


class GateConfig(dg.Config):
    """The champion gate's margins (the verdict is reached with the evaluation it judges)."""

    min_pr_auc_gain: float = Field(default=0.01, description="PR-AUC the challenger must add.")
    max_type_recall_drop: float = Field(
        default=0.05, description="Largest tolerated recall drop on any anomaly type."
    )


@dg.asset(group_name="evaluation", required_resource_keys={"mlflow", "warehouse"}, kinds={"mlflow"})
def model_evaluation(
    context: dg.AssetExecutionContext,
    config: GateConfig,
    training_set: TrainingSetInfo,
    baseline_models: list[CandidateModel],
    anomaly_model: list[CandidateModel],
) -> EvaluationOutcome:
    """Every candidate and the current champion, scored on the same held-out (newest) days, and
    the gate's verdict on them (promote, keep the champion, or the cold-start default).

    The report (metrics with bootstrap CIs, threshold tables, confusion matrices, per-type recall,
    plots) is shown here as Markdown and logged to MLflow; with no labels it says that quality
    cannot be measured and shows distributions and alert volumes instead. The candidates become
    versions of the registered model here, once both training assets of the run have succeeded.
    """
    import mlflow
    import polars as pl

    from anomaly_pipeline.alert_guard import judge_day
    from anomaly_pipeline.bundle import ScoringBundle
    from anomaly_pipeline.evaluation import (
        compare_detectors,
        evaluate_detector,
        gate_verdict,
        render_report,
        save_evaluations,
        write_report,
    )
    from anomaly_pipeline.model_registry import (
        REGISTERED_MODEL,
        gate_tags,
        register_detector,
        training_run_tags,
    )
    from anomaly_pipeline.scoring import evaluation_frame

    info = training_set
    holdout = pl.read_parquet(info.path("holdout"))
    home: DataHome = context.resources.warehouse.data_home
    champion = home.champion()
    champion_scores, champion_eval, champion_fit = None, None, None
    if champion is not None:
        champion_bundle = ScoringBundle.load(champion.bundle_dir)
        champion_scores = evaluation_frame(champion_bundle, holdout)
        champion_eval = evaluate_detector(
            champion_scores, threshold=champion_bundle.threshold_points
        )
        # Would the alert guard withhold the champion's alerts on these days? (see gate_verdict)
        champion_fit = judge_day(
            "held-out days",
            champion_scores["score"].to_numpy() >= champion_bundle.threshold_points,
            champion_bundle.raw_scores(holdout),
            ScoringBundle.reference(champion.bundle_dir)[0]["raw_score"].to_numpy(),
            threshold_percentile=champion_bundle.detector.threshold_percentile,
        )
    evaluations = {}
    for ref in [*baseline_models, *anomaly_model]:
        bundle = ScoringBundle.load(ref.model_dir)
        previous = (
            champion_scores.select("user_key", "event_day", "score")
            if champion_scores is not None
            else None
        )
        evaluations[ref.kind] = evaluate_detector(
            evaluation_frame(bundle, holdout), threshold=bundle.threshold_points, previous=previous
        )
    verdict = gate_verdict(
        evaluations,
        champion_eval,
        min_pr_auc_gain=config.min_pr_auc_gain,
        max_type_recall_drop=config.max_type_recall_drop,
        champion_unfit="; ".join(champion_fit.causes)
        if champion_fit and not champion_fit.passed
        else None,
    )
    report_dir = home.artifacts / "evaluations" / context.run_id
    shown = dict(evaluations)
    if champion is not None and champion_eval is not None:
        shown[f"champion (v{champion.ref.version})"] = champion_eval
    paths = write_report(
        report_dir, shown, title=f"Holdout {info.days['holdout'][0]} – {info.days['holdout'][-1]}"
    )
    gate_md = f"**Champion gate: {verdict.action}.** {verdict.reason}"
    paths.report.write_text(
        paths.report.read_text(encoding="utf-8") + f"\n\n{gate_md}\n", encoding="utf-8"
    )
    save_evaluations(report_dir / "candidates.json", evaluations)
    if champion_eval is not None:
        save_evaluations(report_dir / "champion.json", {"champion": champion_eval})
    with active_mlflow_run(context.resources.mlflow):
        mlflow.set_tags(
            training_run_tags(
                context.dagster_run.job_name, info.days, list(evaluations), verdict.action
            )
        )
        for name, evaluation in evaluations.items():
            if evaluation.pr_auc is not None and evaluation.roc_auc is not None:
                mlflow.log_metrics(
                    {
                        f"{name}.pr_auc": evaluation.pr_auc.value,
                        f"{name}.roc_auc": evaluation.roc_auc.value,
                    }
                )
        mlflow.log_artifacts(str(report_dir), artifact_path="evaluation")
    # Every training of the run succeeded (both inputs exist): only now do the candidates become
    # model versions, so a killed or failed training leaves the registry untouched. Each carries
    # the gate's decision about it: the registry reads as a history of decisions.
    by_kind = {
        ref.kind: RegisteredModel.of(
            ref,
            name=REGISTERED_MODEL,
            version=str(
                register_detector(
                    context.resources.mlflow.tracking_uri,
                    ref.artifact_uri,
                    ref.mlflow_run_id,
                    kind=ref.kind,
                    name=REGISTERED_MODEL,
                    tags={
                        **ref.tags,
                        **gate_tags(
                            ref.kind,
                            action=verdict.action,
                            promoted=verdict.promoted,
                            reason=verdict.reason,
                        ),
                    },
                ).version
            ),
        )
        for ref in [*baseline_models, *anomaly_model]
    }
    champion_version = str(champion.ref.version) if champion else None
    context.add_output_metadata(
        {
            "report": dg.MetadataValue.md(
                gate_md + "\n\n" + render_report(shown, title="Model evaluation")
            ),
            "summary": dg.MetadataValue.md(str(compare_detectors(shown))),
            "report_path": dg.MetadataValue.path(str(paths.report)),
            "gate_action": verdict.action,
            "gate_reason": verdict.reason,
            "cold_start_default": verdict.cold_start_default or "no",
            "challenger_reason": verdict.challenger_reason,
            "champion_version": champion_version or "none",
        }
    )
    return EvaluationOutcome(
        report_dir=str(report_dir),
        gate=verdict,
        promoted=by_kind.get(verdict.promoted) if verdict.promoted else None,
        champion_version=champion_version,
    )


@dg.asset_check(
    asset=model_evaluation,
    name=GATE_CHECK,
    blocking=True,
    description="Promote the challenger only if it beats the champion's PR-AUC by the "
    "margin and regresses on no anomaly type beyond the tolerance; with "
    "no labels and no champion, promote the label-free default. Keeping "
    "the champion passes; only a gate that cannot decide fails.",
)
def champion_gate(model_evaluation: EvaluationOutcome) -> dg.AssetCheckResult:
    gate, promoted = model_evaluation.gate, model_evaluation.promoted
    metadata: dict[str, Any] = {
        "decision": gate.action,
        "promoted": f"{promoted.kind} v{promoted.version}" if promoted else "none",
        "champion": model_evaluation.champion_version or "none",
        "cold_start_default": gate.cold_start_default or "no",
        "challenger_reason": gate.challenger_reason,
        "details": dg.MetadataValue.json(json.loads(json.dumps(gate.details, default=str))),
    }
    if gate.action == "error":
        # Raised, not a failed result: the step's error (and so the failure alert) is the reason.
        raise dg.Failure(description=f"champion gate: {gate.reason}", metadata=metadata)
    return dg.AssetCheckResult(passed=True, description=gate.reason, metadata=metadata)


@dg.asset(
    group_name="evaluation",
    deps=[model_evaluation],
    kinds={"mlflow"},
    output_required=False,
    description="The registered model version that scores production days (MLflow alias "
    "'champion'); materialised only when the champion gate promotes.",
)
def champion_model(
    context: dg.AssetExecutionContext,
    model_evaluation: EvaluationOutcome,
    warehouse: WarehouseResource,
) -> Iterator[dg.Output[RegisteredModel]]:
    from anomaly_pipeline.model_registry import set_champion

    promoted, gate = model_evaluation.promoted, model_evaluation.gate
    if promoted is None:
        context.log.info(f"champion v{model_evaluation.champion_version} kept: {gate.reason}")
        return
    set_champion(warehouse.data_home.mlflow_tracking_uri, promoted.version, name=promoted.name)
    yield dg.Output(
        promoted,
        metadata={
            "model": promoted.name,
            "version": promoted.version,
            "kind": promoted.kind,
            "mlflow_run_id": promoted.mlflow_run_id,
            "previous_version": model_evaluation.champion_version or "none",
            "cold_start_default": gate.cold_start_default or "no",
            "reason": gate.reason,
        },
    )
