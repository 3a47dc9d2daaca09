//! The server-side assignors of KIP-848 consumer groups: `uniform` (sticky and balanced, the
//! default) and `range` (Kafka's per-topic ranges). Pure functions from the members, the
//! subscribers of each topic and the previous target to the new target assignment.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::consumer::{Assignment, TopicInfo};

/// The assignors a client may name in `server_assignor`; the first is the default.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// The target assignment computed by `assignor` (one of [`ASSIGNORS`]; any other name is taken
/// as the default): one entry per member of `ids`, from the subscribers of each topic and the
/// `previous` target (which the sticky assignor keeps as much of as it can).
pub(super) fn assign(
    assignor: &str,
    ids: &[String],
    subscribers: &[(TopicInfo, Vec<String>)],
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    if assignor == "range" {
        range_assign(ids, subscribers)
    } else {
        uniform_assign(ids, subscribers, previous)
    }
}

/// Kafka's range assignor, per topic: subscribers sorted by member id, each gets a contiguous
/// range, the first `partitions % members` one more.
fn range_assign(
    ids: &[String],
    subscribers: &[(TopicInfo, Vec<String>)],
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> =
        ids.iter().map(|i| (i.clone(), Assignment::new())).collect();
    for (t, subs) in subscribers {
        if subs.is_empty() || t.partitions <= 0 {
            continue;
        }
        let mut subs = subs.clone();
        subs.sort();
        let n = subs.len() as i32;
        let (each, extra) = (t.partitions / n, t.partitions % n);
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            let ps: BTreeSet<i32> = (next..next + take).collect();
            next += take;
            if !ps.is_empty() {
                out.entry(m.clone()).or_default().insert(t.id, ps);
            }
        }
    }
    out
}

/// A sticky, balanced assignor: members keep what they had (up to an even share), leftovers go
/// to the eligible member with the fewest partitions, then partitions move from the fullest to
/// the emptiest eligible member until counts differ by at most one.
fn uniform_assign(
    ids: &[String],
    subscribers: &[(TopicInfo, Vec<String>)],
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> =
        ids.iter().map(|i| (i.clone(), Assignment::new())).collect();
    let mut counts: BTreeMap<String, usize> = ids.iter().map(|i| (i.clone(), 0)).collect();
    let mut eligible: BTreeMap<(Uuid, i32), Vec<String>> = BTreeMap::new();
    for (t, subs) in subscribers {
        if subs.is_empty() {
            continue;
        }
        for p in 0..t.partitions.max(0) {
            eligible.insert((t.id, p), subs.clone());
        }
    }
    if ids.is_empty() || eligible.is_empty() {
        return out;
    }
    let share = eligible.len().div_ceil(ids.len());
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    for id in ids {
        let Some(prev) = previous.get(id) else {
            continue;
        };
        for (t, ps) in prev {
            for p in ps {
                let key = (*t, *p);
                let ok = eligible.get(&key).is_some_and(|e| e.contains(id));
                if ok && !owner.contains_key(&key) && counts[id] < share {
                    owner.insert(key, id.clone());
                    *counts.entry(id.clone()).or_default() += 1;
                }
            }
        }
    }
    for (key, subs) in &eligible {
        if owner.contains_key(key) {
            continue;
        }
        if let Some(best) = subs.iter().min_by_key(|m| (counts[*m], (*m).clone())) {
            owner.insert(*key, best.clone());
            *counts.entry(best.clone()).or_default() += 1;
        }
    }
    // Balance: bounded by the number of partitions times members.
    for _ in 0..eligible.len() * ids.len() {
        let mut moved = false;
        let mut by_count: Vec<(usize, String)> =
            counts.iter().map(|(m, c)| (*c, m.clone())).collect();
        by_count.sort();
        'outer: for (low_c, low) in &by_count {
            for (high_c, high) in by_count.iter().rev() {
                if *high_c <= low_c + 1 {
                    break;
                }
                let candidate = owner
                    .iter()
                    .rev()
                    .find(|(k, o)| *o == high && eligible.get(*k).is_some_and(|e| e.contains(low)))
                    .map(|(k, _)| *k);
                if let Some(k) = candidate {
                    owner.insert(k, low.clone());
                    *counts.entry(high.clone()).or_default() -= 1;
                    *counts.entry(low.clone()).or_default() += 1;
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    for ((t, p), m) in owner {
        out.entry(m).or_default().entry(t).or_default().insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::consumer::{count, intersect};
    use super::*;

    fn topic(name: &str, n: i32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: n,
        }
    }

    #[test]
    fn range_and_uniform_cover_everything() {
        let t1 = topic("t", 7);
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let subs = vec![(t1.clone(), ids.clone())];
        for out in [
            range_assign(&ids, &subs),
            uniform_assign(&ids, &subs, &HashMap::new()),
        ] {
            let counts: Vec<usize> = ids.iter().map(|i| count(&out[i])).collect();
            assert_eq!(counts.iter().sum::<usize>(), 7);
            assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        }
        assert_eq!(range_assign(&ids, &subs)["a"][&t1.id], (0..3).collect());
    }

    #[test]
    fn uniform_is_sticky() {
        let t = topic("t", 12);
        let ids3: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let first = uniform_assign(&ids3, &[(t.clone(), ids3.clone())], &HashMap::new());
        let mut ids4 = ids3.clone();
        ids4.push("d".into());
        let second = uniform_assign(&ids4, &[(t.clone(), ids4.clone())], &first);
        // Everyone has three; each old member kept three of its four.
        for id in &ids4 {
            assert_eq!(count(&second[id]), 3, "{id}");
        }
        for id in &ids3 {
            assert_eq!(
                count(&intersect(&first[id], &second[id])),
                3,
                "{id} moved too much"
            );
        }
        // Heterogeneous subscriptions: only subscribers get a topic's partitions.
        let u = topic("u", 4);
        let only_d = vec!["d".to_string()];
        let third = uniform_assign(
            &ids4,
            &[(t.clone(), ids3.clone()), (u.clone(), only_d)],
            &second,
        );
        assert_eq!(third["d"].get(&u.id).map(|p| p.len()), Some(4));
        assert!(!third["d"].contains_key(&t.id));
        let t_total: usize = ids3
            .iter()
            .map(|i| third[i].get(&t.id).map_or(0, |p| p.len()))
            .sum();
        assert_eq!(t_total, 12);
    }
}
