//! Backup schedules: cron expressions evaluated in UTC (croner does the parsing and the calendar).

use std::str::FromStr;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Schedule(croner::Cron);

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self, String> {
        croner::Cron::from_str(expr)
            .map(Schedule)
            .map_err(|e| format!("schedule `{expr}` is not a cron expression: {e}"))
    }

    /// The latest slot at or before `now`.
    pub fn last_slot(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_previous_occurrence(&now, true).ok()
    }

    pub fn next_slot(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&now, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_slots() {
        let s = Schedule::parse("0 3 * * *").unwrap_or_else(|e| panic!("{e}"));
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap_or_default();
        assert_eq!(
            s.last_slot(now).map(|t| t.to_rfc3339()),
            Some("2026-11-23T03:00:00+00:00".into())
        );
        assert_eq!(
            s.next_slot(now).map(|t| t.to_rfc3339()),
            Some("2026-11-24T03:00:00+00:00".into())
        );
        assert!(Schedule::parse("every day").is_err());
    }
}
