//! What the backends share: the families a host programs, and the other managed interfaces as
//! the shared chains see them.

use crate::plan::Family;
use crate::rules::Member;
use crate::system::state::Record;

pub(crate) fn families(ipv6: bool) -> Vec<Family> {
    Family::BOTH
        .into_iter()
        .filter(|f| *f == Family::V4 || ipv6)
        .collect()
}

/// The other managed interfaces as one family's shared chain sees them.
pub(super) fn members(records: &[Record], family: Family) -> Vec<Member> {
    records
        .iter()
        .filter_map(|r| {
            Some(Member {
                iface: r.iface.clone(),
                policy: *r.policies.get(&family)?,
                log: r.log,
            })
        })
        .collect()
}
