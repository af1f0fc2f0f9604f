/**
 * cuckmq for Effect: a PostgreSQL-backed job queue.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as CuckmqError from "./CuckmqError.js"

/** @since 0.1.0 */
export * as Migrations from "./Migrations.js"
