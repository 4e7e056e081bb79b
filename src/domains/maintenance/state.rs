//! The one state machine every work-order change goes through.

crate::text_enum! {
    /// Where a work order is in its life.
    pub enum Status {
        Pending = "pending",
        Assigned = "assigned",
        Accepted = "accepted",
        InProgress = "in_progress",
        OnHold = "on_hold",
        Completed = "completed",
        Cancelled = "cancelled",
    }
}

impl Status {
    /// Open work is work a worker may still answer about.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Pending | Self::Completed | Self::Cancelled)
    }
}

crate::text_enum! {
    /// Which trade's work it is: it decides who may be offered it.
    pub enum WorkKind {
        Maintenance = "maintenance",
        Housekeeping = "housekeeping",
    }
}

crate::text_enum! {
    /// How soon a work order needs doing: it sets the acceptance timeout and the SMS fallback.
    pub enum Priority {
        Low = "low",
        Medium = "medium",
        High = "high",
        Urgent = "urgent",
    }
}

/// What someone asks to happen to a work order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Assign,
    Accept,
    Decline,
    OnMyWay,
    Start,
    Hold,
    Complete,
    Cancel,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assign => "assign",
            Self::Accept => "accept",
            Self::Decline => "decline",
            Self::OnMyWay => "on my way",
            Self::Start => "start",
            Self::Hold => "put on hold",
            Self::Complete => "complete",
            Self::Cancel => "cancel",
        }
    }
}

/// The status `action` leads to from `from`, or `None` when the move is not allowed.
/// "On my way" is news, not a status: it keeps an accepted work order accepted.
pub fn next(from: Status, action: Action) -> Option<Status> {
    use Action as A;
    use Status as S;
    match (from, action) {
        (S::Pending | S::Assigned | S::Accepted | S::OnHold, A::Assign) => Some(S::Assigned),
        (S::Assigned, A::Accept) => Some(S::Accepted),
        (S::Assigned | S::Accepted, A::Decline) => Some(S::Pending),
        (S::Accepted, A::OnMyWay) => Some(S::Accepted),
        (S::Accepted | S::OnHold, A::Start) => Some(S::InProgress),
        (S::Accepted | S::InProgress, A::Hold) => Some(S::OnHold),
        (S::Accepted | S::InProgress | S::OnHold, A::Complete) => Some(S::Completed),
        (S::Pending | S::Assigned | S::Accepted | S::InProgress | S::OnHold, A::Cancel) => {
            Some(S::Cancelled)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 7] = [
        Status::Pending,
        Status::Assigned,
        Status::Accepted,
        Status::InProgress,
        Status::OnHold,
        Status::Completed,
        Status::Cancelled,
    ];

    #[test]
    fn the_usual_path_is_allowed() {
        let mut status = Status::Pending;
        for action in [
            Action::Assign,
            Action::Accept,
            Action::OnMyWay,
            Action::Start,
            Action::Hold,
            Action::Start,
            Action::Complete,
        ] {
            status = next(status, action).unwrap_or_else(|| panic!("{action:?} from {status}"));
        }
        assert_eq!(status, Status::Completed);
    }

    #[test]
    fn finished_work_cannot_move() {
        for action in [
            Action::Assign,
            Action::Accept,
            Action::Decline,
            Action::OnMyWay,
            Action::Start,
            Action::Hold,
            Action::Complete,
            Action::Cancel,
        ] {
            assert_eq!(next(Status::Completed, action), None, "{action:?}");
            assert_eq!(next(Status::Cancelled, action), None, "{action:?}");
        }
    }

    #[test]
    fn illegal_moves_are_refused() {
        assert_eq!(next(Status::Pending, Action::Accept), None);
        assert_eq!(
            next(Status::Assigned, Action::Complete),
            None,
            "accept first"
        );
        assert_eq!(next(Status::InProgress, Action::Accept), None);
        assert_eq!(
            next(Status::InProgress, Action::Decline),
            None,
            "started work is put on hold, not declined"
        );
        for status in ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
    }
}
