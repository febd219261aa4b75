//! Group commit: concurrent callers queue their writes, and whoever gets the writer next runs
//! everything queued so far in one commit, so that N callers waiting on a busy writer pay for one
//! commit (one transaction, one fsync) instead of N in a row.
//!
//! Used by the ledger (one SQLite transaction per group) and the audit log (one write and fsync
//! per group). Each caller still gets its own answer, and returns only once the commit that
//! carried its write is done. A write can also be *deferred*: queued without waiting, it goes
//! out with the next group, or when the writer's holder runs the queue ([`Group::run_pending`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The queue shared by the callers of one writer. `Op` is a queued write, `Out` its answer.
#[derive(Debug)]
pub struct Group<Op, Out> {
    queue: Mutex<Queue<Op, Out>>,
}

#[derive(Debug)]
struct Queue<Op, Out> {
    next: u64,
    /// Queued writes; `None` marks a deferred one, whose answer nobody collects.
    pending: Vec<(Option<u64>, Op)>,
    done: HashMap<u64, Out>,
}

impl<Op, Out> Default for Group<Op, Out> {
    fn default() -> Self {
        Group {
            queue: Mutex::new(Queue {
                next: 0,
                pending: Vec::new(),
                done: HashMap::new(),
            }),
        }
    }
}

impl<Op, Out> Group<Op, Out> {
    /// Queues `op`, takes the writer with `lock`, and unless a previous holder of the writer
    /// already committed `op`, commits every queued write with `commit`.
    ///
    /// `commit` gets the writer and the queued writes in the order they were queued and must
    /// return one answer per write, in the same order (a failed commit answers each write
    /// with the failure). `lost` answers a write `commit` gave no answer for, which only a
    /// bug in `commit` can cause.
    pub fn submit<W>(
        &self,
        op: Op,
        lock: impl FnOnce() -> W,
        commit: impl FnOnce(&mut W, Vec<Op>) -> Vec<Out>,
        lost: impl FnOnce() -> Out,
    ) -> Out {
        let ticket = {
            let mut q = self.locked();
            let t = q.next;
            q.next += 1;
            q.pending.push((Some(t), op));
            t
        };
        let mut writer = lock();
        if let Some(out) = self.locked().done.remove(&ticket) {
            return out;
        }
        let mine = self.commit_pending(&mut writer, commit, Some(ticket));
        drop(writer);
        mine.unwrap_or_else(lost)
    }

    /// Queues `op` without waiting for it: it is committed with the next group. Its answer is
    /// dropped, so `commit` must report a deferred write's failure itself.
    pub fn defer(&self, op: Op) {
        self.locked().pending.push((None, op));
    }

    /// Whether writes are queued.
    pub fn has_pending(&self) -> bool {
        !self.locked().pending.is_empty()
    }

    /// With the writer held (`writer`), commits whatever is queued: for deferred writes, and
    /// before an operation that must see every write made so far.
    pub fn run_pending<W>(&self, writer: &mut W, commit: impl FnOnce(&mut W, Vec<Op>) -> Vec<Out>) {
        if self.has_pending() {
            self.commit_pending(writer, commit, None);
        }
    }

    /// Commits the queue; hands every answer to its caller and returns `mine`'s.
    fn commit_pending<W>(
        &self,
        writer: &mut W,
        commit: impl FnOnce(&mut W, Vec<Op>) -> Vec<Out>,
        mine: Option<u64>,
    ) -> Option<Out> {
        let (tickets, ops): (Vec<Option<u64>>, Vec<Op>) =
            std::mem::take(&mut self.locked().pending)
                .into_iter()
                .unzip();
        if ops.is_empty() {
            return None;
        }
        let outs = commit(writer, ops);
        let mut answer = None;
        // Answers are handed over before the writer is released: whoever takes it next finds
        // its answer rather than an empty queue.
        let mut q = self.locked();
        for (t, out) in tickets.into_iter().zip(outs) {
            match t {
                Some(t) if Some(t) == mine => answer = Some(out),
                Some(t) => {
                    q.done.insert(t, out);
                }
                None => {}
            }
        }
        answer
    }

    fn locked(&self) -> MutexGuard<'_, Queue<Op, Out>> {
        // The queue is consistent between statements: a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn each_caller_gets_its_own_answer_and_waiting_callers_share_commits() {
        let group: Arc<Group<u32, u32>> = Arc::default();
        let writer = Arc::new(Mutex::new(Vec::<usize>::new()));
        let threads: Vec<_> = (0..16u32)
            .map(|i| {
                let (group, writer) = (group.clone(), writer.clone());
                std::thread::spawn(move || {
                    (0..50u32)
                        .map(|k| {
                            let op = i * 1000 + k;
                            let out = group.submit(
                                op,
                                || writer.lock().unwrap(),
                                |w, ops| {
                                    w.push(ops.len());
                                    // Hold the writer a little so that others queue up.
                                    std::thread::sleep(std::time::Duration::from_micros(200));
                                    ops.into_iter().map(|o| o * 2).collect()
                                },
                                || u32::MAX,
                            );
                            (op, out)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for (op, out) in t.join().unwrap() {
                assert_eq!(out, op * 2);
            }
        }
        let commits = writer.lock().unwrap();
        assert_eq!(
            commits.iter().sum::<usize>(),
            16 * 50,
            "every write committed once"
        );
        assert!(
            commits.len() < 16 * 50,
            "waiting callers shared commits ({} commits)",
            commits.len()
        );
    }

    #[test]
    fn deferred_writes_go_out_with_the_next_group_or_when_the_queue_is_run() {
        let group: Group<u32, u32> = Group::default();
        let writer = Mutex::new(Vec::<Vec<u32>>::new());
        let commit = |w: &mut std::sync::MutexGuard<'_, Vec<Vec<u32>>>, ops: Vec<u32>| {
            w.push(ops.clone());
            ops
        };
        group.defer(1);
        group.defer(2);
        assert!(group.has_pending());
        assert_eq!(group.submit(3, || writer.lock().unwrap(), commit, || 0), 3);
        assert_eq!(
            *writer.lock().unwrap(),
            vec![vec![1, 2, 3]],
            "one group, in order"
        );
        group.defer(4);
        group.run_pending(&mut writer.lock().unwrap(), commit);
        assert!(!group.has_pending());
        group.run_pending(&mut writer.lock().unwrap(), commit); // nothing queued: no commit
        assert_eq!(*writer.lock().unwrap(), vec![vec![1, 2, 3], vec![4]]);
        assert!(
            group.locked().done.is_empty(),
            "no answer kept for deferred writes"
        );
    }

    #[test]
    fn a_write_the_commit_forgets_gets_the_lost_answer() {
        let group: Group<u32, Option<u32>> = Group::default();
        let writer = Mutex::new(());
        let out = group.submit(7, || writer.lock().unwrap(), |_, _| Vec::new(), || None);
        assert_eq!(out, None);
    }
}
