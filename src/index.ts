/**
 * cuckmq for Effect: a PostgreSQL-backed job queue.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Cuckmq from "./Cuckmq.js"

/** @since 0.2.0 */
export * as CuckmqAdmin from "./CuckmqAdmin.js"

/** @since 0.2.0 */
export * as CuckmqDashboard from "./CuckmqDashboard.js"

/** @since 0.1.0 */
export * as CuckmqError from "./CuckmqError.js"

/** @since 0.1.0 */
export * as CuckmqEvent from "./CuckmqEvent.js"

/** @since 0.1.0 */
export * as CuckmqMetrics from "./CuckmqMetrics.js"

/** @since 0.1.0 */
export * as JobDefinition from "./JobDefinition.js"

/** @since 0.1.0 */
export * as JobStore from "./JobStore.js"

/** @since 0.1.0 */
export * as Migrations from "./Migrations.js"

/** @since 0.1.0 */
export * as PgJobStore from "./PgJobStore.js"

/** @since 0.1.0 */
export * as Orchestrator from "./Orchestrator.js"

/** @since 0.1.0 */
export * as Worker from "./Worker.js"
