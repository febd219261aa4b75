//! The ledger's count of sign-ins (table `sign_ins`), in SQL both SQLite and PostgreSQL run:
//! each event is one statement, so concurrent sign-ins on any instance count exactly.

use super::{SignInEvent, SignInState, StoreError};

/// The table, for both ledgers' migrations.
pub(super) const TABLE: &str = "CREATE TABLE sign_ins (
        name           TEXT PRIMARY KEY NOT NULL,
        failures       BIGINT NOT NULL DEFAULT 0,
        locked_until   BIGINT,
        last_totp_step BIGINT NOT NULL DEFAULT -1
    );";

const LOOK: &str = "SELECT failures, locked_until FROM sign_ins WHERE name = $1";

const FAILED: &str = "INSERT INTO sign_ins (name, failures) VALUES ($1, 1)
    ON CONFLICT (name) DO UPDATE SET
        failures = CASE WHEN sign_ins.failures + 1 >= $2 THEN 0 ELSE sign_ins.failures + 1 END,
        locked_until = CASE WHEN sign_ins.failures + 1 >= $2 THEN $3
                            ELSE sign_ins.locked_until END
    RETURNING failures, locked_until";

/// Accepted only when the step is later than the last one: otherwise no row comes back.
const SUCCEEDED_WITH_CODE: &str = "INSERT INTO sign_ins (name, failures, last_totp_step)
    VALUES ($1, 0, $2)
    ON CONFLICT (name) DO UPDATE SET failures = 0, locked_until = NULL, last_totp_step = $2
        WHERE sign_ins.last_totp_step < $2
    RETURNING failures, locked_until";

const SUCCEEDED: &str = "INSERT INTO sign_ins (name, failures) VALUES ($1, 0)
    ON CONFLICT (name) DO UPDATE SET failures = 0, locked_until = NULL
    RETURNING failures, locked_until";

fn state(row: Option<(i64, Option<i64>)>, accepted: bool) -> SignInState {
    match row {
        None => SignInState {
            accepted,
            ..SignInState::default()
        },
        Some((failures, locked_until)) => SignInState {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            locked_until,
            accepted,
        },
    }
}

/// SQLite numbers its parameters `?1`, PostgreSQL `$1`.
fn sqlite_text(sql: &str) -> String {
    sql.replace('$', "?")
}

/// One event on a SQLite ledger.
pub(super) fn sqlite(
    conn: &rusqlite::Connection,
    name: &str,
    event: SignInEvent,
) -> Result<SignInState, StoreError> {
    use rusqlite::OptionalExtension;
    let row = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?));
    let one = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        conn.prepare_cached(&sqlite_text(sql))?
            .query_row(params, row)
            .optional()
    };
    Ok(match event {
        SignInEvent::Look => state(one(LOOK, &[&name])?, false),
        SignInEvent::Failed {
            max_failures,
            lock_until,
        } => state(
            one(FAILED, &[&name, &i64::from(max_failures), &lock_until])?,
            false,
        ),
        SignInEvent::Succeeded {
            totp_step: Some(step),
        } => {
            let r = one(SUCCEEDED_WITH_CODE, &[&name, &step])?;
            let accepted = r.is_some();
            state(r, accepted)
        }
        SignInEvent::Succeeded { totp_step: None } => state(one(SUCCEEDED, &[&name])?, true),
    })
}

/// One event on a PostgreSQL ledger.
pub(super) fn postgres(
    client: &mut impl postgres::GenericClient,
    name: &str,
    event: SignInEvent,
) -> Result<SignInState, StoreError> {
    let mut one = |sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| {
        client
            .query_opt(sql, params)?
            .map(|r| Ok::<_, postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()
    };
    Ok(match event {
        SignInEvent::Look => state(one(LOOK, &[&name])?, false),
        SignInEvent::Failed {
            max_failures,
            lock_until,
        } => state(
            one(FAILED, &[&name, &i64::from(max_failures), &lock_until])?,
            false,
        ),
        SignInEvent::Succeeded {
            totp_step: Some(step),
        } => {
            let r = one(SUCCEEDED_WITH_CODE, &[&name, &step])?;
            let accepted = r.is_some();
            state(r, accepted)
        }
        SignInEvent::Succeeded { totp_step: None } => state(one(SUCCEEDED, &[&name])?, true),
    })
}
