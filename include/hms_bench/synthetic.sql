-- Synthetic proposals for the desk's page-time benchmark (hms_bench.desk_pages), written straight
-- into Airflow's metadata database in the exact form real proposal runs leave: a dag_run row whose
-- conf is the proposal, its five task instances, and the XComs its status is read from — the
-- gate's `decision`, the audit step's `return_value` ({"outcome", "reason", …}), and the other
-- steps' results. Parameters (psycopg2 style): n, step_s, review_timeout_s, queued, running,
-- prefix, template_run_id (a real completed proposal run to copy the task instances' columns from).
--
-- Mix, oldest first, one submission every step_s seconds up to a minute ago: the newest `queued`
-- are queued, the `running` before them running; every 50th is a high-impact review — awaiting
-- review within the review timeout, review_timeout before; every 25th denied; every 40th failed
-- (half at apply_policy, half at notify_officers); the rest completed.

-- Times as the workflow writes them into XComs (ISO 8601, UTC offset spelled out).
CREATE FUNCTION pg_temp.iso(moment timestamptz) RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"+00:00"') $$;

CREATE TEMP TABLE synthetic ON COMMIT DROP AS
WITH base AS (
    SELECT i, now() - make_interval(secs => (%(n)s - i) * %(step_s)s + 60) AS submitted
    FROM generate_series(1, %(n)s) AS i
), kinds AS (
    SELECT i, submitted,
           CASE
               WHEN i > %(n)s - %(queued)s THEN 'queued'
               WHEN i > %(n)s - %(queued)s - %(running)s THEN 'running'
               WHEN i %% 50 = 7 AND submitted > now() - make_interval(secs => %(review_timeout_s)s)
                   THEN 'awaiting_governance'
               WHEN i %% 50 = 7 THEN 'review_timeout'
               WHEN i %% 25 = 3 THEN 'denied'
               WHEN i %% 40 = 11 THEN 'failed'
               ELSE 'completed'
           END AS kind,
           md5('decision' || i) AS decision_id,
           submitted + interval '1.2 seconds' AS decided
    FROM base
)
SELECT i, kind, submitted, decision_id,
       %(prefix)s || lpad(i::text, 6, '0') AS proposal_id,
       'proposal__' || %(prefix)s || lpad(i::text, 6, '0') AS run_id,
       (ARRAY['hms-a2a', 'hms-a2a', 'hms-a2a', 'planning-portal', 'permits-office', 'housing-desk'])[1 + i %% 6]
           AS submitter,
       CASE WHEN i %% 7 = 0 THEN 'backlog_sweeper' ELSE 'agent' END AS user_name,
       (ARRAY['Optimise the FOIA backlog', 'Weekend permit batch', 'Raise the R2 height limit',
              'Parking fees by zone', 'Extend library opening hours', 'Fast-track small housing permits',
              'Bus lanes on Main Street', 'Snow clearing priorities', 'LED street lights',
              'Reorder the inspection queue', 'Waive late fees for seniors', 'Merge duplicate case files',
              'Archive closed FOIA requests', 'Rebalance caseworker load', 'Night-time noise permits',
              'School crossing guards', 'Tree planting grants', 'Food truck zones',
              'Cap building-permit wait at 20 days', 'Digitise paper forms'])[1 + i %% 20] || ' #' || i
           AS title,
       CASE kind
           WHEN 'queued' THEN NULL
           WHEN 'denied' THEN jsonb_build_object(
               'reason', 'processing is not allowed on weekends (day: Sat)', 'status', 'denied',
               'created_at', pg_temp.iso(decided), 'decision_id', decision_id)
           WHEN 'awaiting_governance' THEN jsonb_build_object(
               'reason', 'high-impact proposal: waiting for a human reviewer', 'status', 'review',
               'deadline', pg_temp.iso(decided + make_interval(secs => %(review_timeout_s)s)),
               'created_at', pg_temp.iso(decided), 'decision_id', decision_id)
           WHEN 'review_timeout' THEN jsonb_build_object(
               'reason', 'no reviewer decided on ' || decision_id || ' before the review deadline '
                         || pg_temp.iso(decided + make_interval(secs => %(review_timeout_s)s)),
               'status', 'review_timeout',
               'deadline', pg_temp.iso(decided + make_interval(secs => %(review_timeout_s)s)),
               'created_at', pg_temp.iso(decided), 'decision_id', decision_id)
           ELSE jsonb_build_object('reason', 'no governance rule objects', 'status', 'approved',
                                   'created_at', pg_temp.iso(decided), 'decision_id', decision_id)
       END AS decision,
       CASE kind
           WHEN 'completed' THEN 'policy applied and officers notified'
           WHEN 'denied' THEN 'processing is not allowed on weekends (day: Sat)'
           WHEN 'review_timeout' THEN 'no reviewer decided on ' || decision_id || ' before the review deadline '
                                      || pg_temp.iso(decided + make_interval(secs => %(review_timeout_s)s))
           WHEN 'failed' THEN CASE WHEN i %% 2 = 0
               THEN 'PermanentServiceError: POST /svc/policy answered 422: {"error":"rule conflicts with rule 12"}'
               ELSE 'TransientServiceError: POST /notifications answered 503 (after 3 tries)' END
       END AS outcome_reason,
       CASE WHEN kind = 'failed' THEN CASE WHEN i %% 2 = 0 THEN 'apply_policy' ELSE 'notify_officers' END END
           AS failed_step,
       CASE kind
           WHEN 'queued' THEN NULL
           WHEN 'running' THEN NULL
           WHEN 'awaiting_governance' THEN submitted + interval '3 seconds'
           WHEN 'review_timeout' THEN submitted + make_interval(secs => %(review_timeout_s)s + 4)
           ELSE submitted + interval '6 seconds'
       END AS ended
FROM kinds;
-- Planner statistics inside this transaction, after each load: without them the planner takes the
-- new rows for none and checks foreign keys and joins row by row (hours instead of seconds).
ANALYZE synthetic;

INSERT INTO dag_run (dag_id, run_id, queued_at, start_date, end_date, state, run_type, triggered_by,
                     triggering_user_name, conf, run_after, log_template_id, created_at, updated_at,
                     clear_number, span_status, created_dag_version_id)
SELECT 'proposal_orchestration', s.run_id, s.submitted,
       CASE WHEN s.kind <> 'queued' THEN s.submitted + interval '0.5 seconds' END,
       s.ended,
       CASE s.kind WHEN 'queued' THEN 'queued' WHEN 'running' THEN 'running' WHEN 'failed' THEN 'failed'
                   ELSE 'success' END,
       'manual', 'REST_API', s.user_name,
       jsonb_build_object('id', s.proposal_id, 'title', s.title, 'submitted_by', s.submitter,
                          'rule', jsonb_build_object('queue', lower(split_part(s.title, ' ', 2)),
                                                     'max_age_days', 10 + s.i %% 30),
                          'priority', CASE WHEN s.i %% 10 = 0 THEN 'high' ELSE 'normal' END,
                          'impact', CASE WHEN s.i %% 50 = 7 THEN 'high' ELSE 'normal' END),
       s.submitted, t.log_template_id, s.submitted, coalesce(s.ended, s.submitted), 0, 'not_started',
       t.created_dag_version_id
FROM synthetic s
CROSS JOIN (SELECT log_template_id, created_dag_version_id FROM dag_run
            WHERE dag_id = 'proposal_orchestration' AND run_id = %(template_run_id)s) t;
ANALYZE dag_run;  -- before the task instances: their foreign-key checks look runs up

INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, start_date, end_date, duration, state,
                           try_number, max_tries, hostname, unixname, pool, pool_slots, queue, priority_weight,
                           operator, custom_operator_name, queued_dttm, scheduled_dttm, executor_config,
                           updated_at, span_status, task_display_name, dag_version_id)
SELECT gen_random_uuid(), t.task_id, t.dag_id, s.run_id, -1, done.at - interval '0.7 seconds', done.at, 0.7,
       done.state, CASE WHEN done.state IN ('success', 'failed') THEN 1 ELSE 0 END, t.max_tries, t.hostname,
       t.unixname, t.pool, t.pool_slots, t.queue, t.priority_weight, t.operator, t.custom_operator_name,
       s.submitted, s.submitted, t.executor_config, done.at, 'not_started', t.task_display_name, t.dag_version_id
FROM synthetic s
JOIN task_instance t ON t.dag_id = 'proposal_orchestration' AND t.run_id = %(template_run_id)s
CROSS JOIN LATERAL (SELECT
    CASE
        WHEN t.task_id = 'governance_gate' THEN 'success'
        WHEN s.kind = 'running' THEN NULL
        WHEN s.kind IN ('denied', 'review_timeout', 'awaiting_governance') THEN
            CASE WHEN t.task_id = 'record_audit' AND s.kind <> 'awaiting_governance' THEN 'success' ELSE 'skipped' END
        WHEN s.kind = 'failed' THEN
            CASE t.task_id
                WHEN 'apply_policy' THEN CASE WHEN s.failed_step = 'apply_policy' THEN 'failed' ELSE 'success' END
                WHEN 'notify_officers' THEN CASE WHEN s.failed_step = 'apply_policy' THEN 'upstream_failed'
                                                 ELSE 'failed' END
                WHEN 'record_audit' THEN 'success'
                ELSE 'failed'
            END
        ELSE CASE WHEN t.task_id = 'fail_run_if_a_step_failed' THEN 'skipped' ELSE 'success' END
    END AS state,
    coalesce(s.ended, s.submitted + interval '1.5 seconds') AS at) done
WHERE s.kind <> 'queued';
ANALYZE task_instance;

INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp)
SELECT r.id, x.task_id, -1, x.key, 'proposal_orchestration', s.run_id, x.value,
       coalesce(s.ended, s.submitted + interval '1.5 seconds')
FROM synthetic s
JOIN dag_run r ON r.dag_id = 'proposal_orchestration' AND r.run_id = s.run_id
CROSS JOIN LATERAL (VALUES
    ('governance_gate', 'decision', s.decision),
    ('governance_gate', 'return_value', CASE WHEN s.decision ->> 'status' = 'approved' THEN s.decision END),
    ('apply_policy', 'return_value',
     CASE WHEN s.kind = 'completed' OR s.failed_step = 'notify_officers' THEN jsonb_build_object(
         'version', 1, 'policy_id', md5('policy' || s.i), 'applied_at', pg_temp.iso(s.submitted + interval '3 seconds'),
         'proposal_id', s.proposal_id) END),
    ('notify_officers', 'return_value',
     CASE WHEN s.kind = 'completed' THEN jsonb_build_object(
         'sent_at', pg_temp.iso(s.submitted + interval '4 seconds'), 'notification_id', md5('notification' || s.i)) END),
    ('record_audit', 'return_value',
     CASE WHEN s.outcome_reason IS NOT NULL THEN jsonb_build_object(
         'reason', s.outcome_reason, 'outcome', s.kind, 'audit_id', md5('audit' || s.i),
         'transient', s.failed_step = 'notify_officers', 'failed_step', s.failed_step) END)
) AS x(task_id, key, value)
WHERE x.value IS NOT NULL;
