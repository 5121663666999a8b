//! Who should do which job: every worker computes the same answer from the
//! same member list, without talking to the others.
//!
//! Balanced rendezvous hashing: each job ranks the members by a hash of
//! (job, member) and goes to the best-ranked member that still has room
//! (every member gets `floor(jobs / members)` jobs, and `jobs % members` of
//! them one more), jobs taken in a fixed order. A
//! member joining or leaving moves few jobs, and no member gets more than
//! its share. Views of the member list can differ for a moment between
//! workers; leases keep a job to one doer meanwhile, and the views agree
//! again within a lease renewal.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

fn rank(job: &str, member: &str) -> u64 {
    let mut key = Vec::with_capacity(job.len() + member.len() + 1);
    key.extend_from_slice(job.as_bytes());
    key.push(0);
    key.extend_from_slice(member.as_bytes());
    xxh3_64(&key)
}

/// Maps each job to a member (none when there are no members).
pub fn assign(jobs: &[String], members: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if members.is_empty() {
        return out;
    }
    let mut members: Vec<&String> = members.iter().collect();
    members.sort();
    members.dedup();
    // Everyone gets `base` jobs, and `extra` members one more.
    let base = jobs.len() / members.len();
    let mut extra = jobs.len() % members.len();
    let mut load: BTreeMap<&str, usize> = members.iter().map(|m| (m.as_str(), 0)).collect();
    let mut jobs: Vec<&String> = jobs.iter().collect();
    jobs.sort();
    for job in jobs {
        let mut ranked = members.clone();
        ranked.sort_by_key(|m| std::cmp::Reverse(rank(job, m)));
        let chosen = ranked
            .into_iter()
            .find(|m| {
                let n = load[m.as_str()];
                n < base || (n == base && extra > 0)
            })
            .expect("capacity covers every job");
        let n = load.get_mut(chosen.as_str()).expect("known member");
        if *n == base {
            extra -= 1;
        }
        *n += 1;
        out.insert(job.clone(), chosen.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:02}")).collect()
    }

    fn loads(a: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for m in a.values() {
            *out.entry(m.clone()).or_insert(0) += 1;
        }
        out
    }

    #[test]
    fn balanced_deterministic_and_stable() {
        let jobs = names("route.ev.", 16);
        let three = names("w", 3);
        let a = assign(&jobs, &three);
        assert_eq!(a.len(), 16);
        assert!(
            loads(&a).values().all(|&n| n == 5 || n == 6),
            "{:?}",
            loads(&a)
        );
        let mut shuffled = three.clone();
        shuffled.reverse();
        assert_eq!(
            assign(&jobs, &shuffled),
            a,
            "order of the member list does not matter"
        );

        // A fourth member takes a share; most jobs stay where they were.
        let four = names("w", 4);
        let b = assign(&jobs, &four);
        assert!(loads(&b).values().all(|&n| n == 4), "{:?}", loads(&b));
        let moved = jobs.iter().filter(|j| a[*j] != b[*j]).count();
        assert!(moved <= 8, "{moved} of 16 jobs moved for one new member");

        // A member leaves: its jobs move, and few others.
        let two = names("w", 2);
        let c = assign(&jobs, &two);
        assert!(loads(&c).values().all(|&n| n == 8), "{:?}", loads(&c));
        let orphans = jobs.iter().filter(|j| a[*j] == "w02").count();
        let moved = jobs.iter().filter(|j| a[*j] != c[*j]).count();
        assert!(moved <= orphans + 3, "{moved} moved, {orphans} had to");
        assert!(assign(&jobs, &[]).is_empty());
    }
}
