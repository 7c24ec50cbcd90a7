//! The write pipeline: the core decides under its lock, the store writes without it
//! (THREATS V3).
//!
//! [`Core::commit`](super::Core) hands each change's batch to one writer thread, with a
//! ticket, and returns; the lock is released before the disk is touched. The writer applies
//! batches strictly in ticket order, several at a time as one write when they queue up
//! (group commit), then publishes their events, in order, and tells each batch's
//! [`Receipt`] it is durable. An API answer waits for its receipt after the lock is gone,
//! so nothing is acknowledged before it is on disk, as before.
//!
//! Between the decision and the write, the core's memory is ahead of the store. Reads that
//! go to the store (final offers and deals, results, used nonces) look through an
//! [`Overlay`] of the batches still in flight first, so nobody, the core included, sees an
//! older state than the one it decided on: a nonce spent a moment ago is spent.
//!
//! If a write fails, it and every batch queued after it (which may build on it) fail, and
//! the writer refuses everything until the core resets it: the core then rebuilds its
//! memory from the store, as it always did on a failed write.

use super::SolverError;
use crate::protocol::records::{DealRecord, Event, OfferRecord, ResultRecord};
use crate::solver::maps::shrink;
use crate::solver::store::{Batch, Op, Store, StoreError};
use alloy::primitives::{Address, B256, U256};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::{broadcast, oneshot};

/// Most batches written together in one store write.
const GROUP_MAX: usize = 256;
/// Most batches the core holds back before handing them over unasked.
const HELD_MAX: usize = 32;

enum Msg {
    Write(Vec<Item>),
    /// Answered once everything queued before it is written (or refused).
    Fence(mpsc::SyncSender<()>),
    /// Like a fence, and the writer takes writes again after a failure.
    Reset(mpsc::SyncSender<()>),
}

struct Item {
    ticket: u64,
    batch: Batch,
    done: oneshot::Sender<Result<(), Arc<StoreError>>>,
}

/// What the writer thread and the core share.
#[derive(Default)]
struct Progress {
    /// The last ticket written.
    durable: AtomicU64,
    /// A write failed and the core has not reset the writer yet.
    failed: AtomicBool,
    /// The sequence number of the last event written.
    last_event: AtomicU64,
}

/// The core's end of the pipeline.
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Msg>>,
    /// Batches nobody waits on yet, handed over together: waking the writer thread costs
    /// the committer a system call under the core's lock.
    held: Vec<Item>,
    progress: Arc<Progress>,
    thread: Option<std::thread::JoinHandle<()>>,
    next_ticket: u64,
}

/// Resolves when one batch (and so every batch before it) is durable, or failed.
#[derive(Debug)]
pub struct Receipt(oneshot::Receiver<Result<(), Arc<StoreError>>>);

impl Receipt {
    /// Waits for the batch's write.
    pub async fn durable(self) -> Result<(), SolverError> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Failed(e).into()),
            Err(_) => Err(StoreError::Failed(Arc::new(StoreError::Closed)).into()),
        }
    }
}

impl Writer {
    /// Starts the writer thread for `store`; events of durable batches go to `events`.
    pub(super) fn start(store: Arc<dyn Store>, events: broadcast::Sender<Arc<Event>>) -> Self {
        let (tx, rx) = mpsc::channel();
        let progress = Arc::new(Progress::default());
        let shared = progress.clone();
        let thread = std::thread::Builder::new()
            .name("solver-writer".into())
            .spawn(move || run(store, events, rx, shared))
            .expect("the solver's writer thread starts");
        Self { tx: Some(tx), held: Vec::new(), progress, thread: Some(thread), next_ticket: 1 }
    }

    /// The ticket the next batch sent gets.
    pub(super) fn next_ticket(&self) -> u64 {
        self.next_ticket
    }

    /// Queues `batch` (with its events) and returns its receipt. It is handed to the
    /// writer thread at the latest by [`Writer::hand_over`].
    pub(super) fn send(&mut self, batch: Batch) -> Receipt {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let (done, receipt) = oneshot::channel();
        self.held.push(Item { ticket, batch, done });
        if self.held.len() >= HELD_MAX {
            self.hand_over();
        }
        Receipt(receipt)
    }

    /// Hands the batches held back to the writer thread. The core calls it whenever it
    /// lets go of its lock, and before anyone waits on a receipt.
    pub(super) fn hand_over(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.held);
        if let Some(tx) = &self.tx {
            // The writer lives as long as this end; if it died, the receipts say so.
            let _ = tx.send(Msg::Write(items));
        }
    }

    /// The last ticket written.
    pub(super) fn durable(&self) -> u64 {
        self.progress.durable.load(Ordering::Acquire)
    }

    /// The sequence number of the last event written.
    pub(super) fn last_event(&self) -> u64 {
        self.progress.last_event.load(Ordering::Acquire)
    }

    /// Sets where the event log ends (after the core reloaded it, nothing in flight).
    pub(super) fn set_last_event(&self, seq: u64) {
        self.progress.last_event.store(seq, Ordering::Release);
    }

    /// Whether a write failed since the last reset.
    pub(super) fn failed(&self) -> bool {
        self.progress.failed.load(Ordering::Acquire)
    }

    /// Blocks until every batch queued so far is written or refused.
    pub(super) fn fence(&mut self) {
        self.round_trip(Msg::Fence);
    }

    /// Blocks until every batch queued so far is refused or written, then lets the writer
    /// take writes again.
    pub(super) fn reset(&mut self) {
        self.round_trip(Msg::Reset);
    }

    fn round_trip(&mut self, msg: impl FnOnce(mpsc::SyncSender<()>) -> Msg) {
        self.hand_over();
        let (ack, done) = mpsc::sync_channel(1);
        if let Some(tx) = &self.tx {
            if tx.send(msg(ack)).is_ok() {
                let _ = done.recv();
            }
        }
    }
}

impl Drop for Writer {
    /// Writes what is queued before the store can close.
    fn drop(&mut self) {
        self.hand_over();
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(store: Arc<dyn Store>, events: broadcast::Sender<Arc<Event>>, rx: mpsc::Receiver<Msg>, progress: Arc<Progress>) {
    let mut group: Vec<Item> = Vec::new();
    while let Some(first) = next(&rx) {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Write(items) => group.extend(items),
                Msg::Fence(ack) => {
                    write(&*store, &events, &progress, std::mem::take(&mut group));
                    let _ = ack.send(());
                }
                Msg::Reset(ack) => {
                    write(&*store, &events, &progress, std::mem::take(&mut group));
                    progress.failed.store(false, Ordering::Release);
                    let _ = ack.send(());
                }
            }
            if group.len() < GROUP_MAX {
                next = rx.try_recv().ok();
            }
        }
        write(&*store, &events, &progress, std::mem::take(&mut group));
    }
}

/// Yields this many times for the next batch before sleeping: a busy solver commits every
/// few microseconds, and waking a sleeping writer for each batch costs the committer a
/// system call under the core's lock.
const POLLS_BEFORE_SLEEP: usize = 100;

/// The next message, or `None` once the core is gone.
fn next(rx: &mpsc::Receiver<Msg>) -> Option<Msg> {
    for _ in 0..POLLS_BEFORE_SLEEP {
        match rx.try_recv() {
            Ok(msg) => return Some(msg),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.recv().ok()
}

/// Writes `group` as one batch, then publishes its events and answers its receipts.
fn write(store: &dyn Store, events: &broadcast::Sender<Arc<Event>>, progress: &Progress, mut group: Vec<Item>) {
    let Some(last) = group.last().map(|i| i.ticket) else { return };
    if progress.failed.load(Ordering::Acquire) {
        let e = Arc::new(StoreError::Earlier);
        for item in group {
            let _ = item.done.send(Err(e.clone()));
        }
        return;
    }
    // The events each batch publishes once written, in order.
    let published: Vec<Vec<Arc<Event>>> = group
        .iter()
        .map(|item| {
            item.batch.ops.iter().filter_map(|op| if let Op::Event(e) = op { Some(e.clone()) } else { None }).collect()
        })
        .collect();
    let mut batch = Batch::default();
    for item in &mut group {
        batch.ops.append(&mut item.batch.ops);
    }
    match store.apply(batch) {
        Ok(()) => {
            progress.durable.store(last, Ordering::Release);
            if let Some(seq) = published.iter().rev().find_map(|e| e.last().map(|e| e.seq)) {
                progress.last_event.store(seq, Ordering::Release);
            }
            for (item, item_events) in group.into_iter().zip(published) {
                for e in item_events {
                    // No subscriber is fine: the event is in the log.
                    let _ = events.send(e);
                }
                let _ = item.done.send(Ok(()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store write failed; the solver reloads its state from the store");
            progress.failed.store(true, Ordering::Release);
            let e = Arc::new(e);
            for item in group {
                let _ = item.done.send(Err(e.clone()));
            }
        }
    }
}

/// Removes `key` if the batch with `ticket` was the last to write it.
fn forget<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, (u64, V)>, key: &K, ticket: u64) {
    if map.get(key).is_some_and(|(t, _)| *t == ticket) {
        map.remove(key);
    }
}

/// A key the overlay holds a value under.
#[derive(Debug, Clone, Copy)]
enum Key {
    Offer(B256),
    Deal(B256),
    Result(B256),
    Nonce(Address, U256),
}

/// The writes still in flight, for reads that go to the store.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    offers: HashMap<B256, (u64, OfferRecord)>,
    deals: HashMap<B256, (u64, DealRecord)>,
    /// `None`: deleted.
    results: HashMap<B256, (u64, Option<ResultRecord>)>,
    nonces: HashMap<(Address, U256), u64>,
    keys: VecDeque<(u64, Vec<Key>)>,
}

impl Overlay {
    /// Records the nonces and results the batch with `ticket` writes. (Offers and deals are
    /// read from the core's memory while they are not final: only those that leave memory
    /// come here, through [`Overlay::evicted_offer`] and [`Overlay::evicted_deal`].)
    pub(super) fn add(&mut self, ticket: u64, batch: &Batch) {
        let mut keys = Vec::new();
        for op in &batch.ops {
            match op {
                Op::PutResult(r) => {
                    keys.push(Key::Result(r.deal));
                    self.results.insert(r.deal, (ticket, Some(r.clone())));
                }
                Op::DeleteResult(deal) => {
                    keys.push(Key::Result(*deal));
                    self.results.insert(*deal, (ticket, None));
                }
                Op::UseNonce { account, nonce, .. } => {
                    keys.push(Key::Nonce(*account, *nonce));
                    self.nonces.insert((*account, *nonce), ticket);
                }
                Op::PutOffer(_) | Op::PutDeal(_) | Op::Event(_) | Op::PutMeta(..) => {}
            }
        }
        self.push_keys(ticket, keys);
    }

    /// An offer left the core's memory as the batch with `ticket` (or one before it)
    /// writes it: it is read from here until that batch is written.
    pub(super) fn evicted_offer(&mut self, ticket: u64, offer: OfferRecord) {
        self.push_keys(ticket, vec![Key::Offer(offer.id())]);
        self.offers.insert(offer.id(), (ticket, offer));
    }

    /// A deal left the core's memory: as [`Overlay::evicted_offer`].
    pub(super) fn evicted_deal(&mut self, ticket: u64, deal: DealRecord) {
        self.push_keys(ticket, vec![Key::Deal(deal.id)]);
        self.deals.insert(deal.id, (ticket, deal));
    }

    fn push_keys(&mut self, ticket: u64, mut keys: Vec<Key>) {
        if keys.is_empty() {
            return;
        }
        match self.keys.back_mut() {
            Some((t, last)) if *t == ticket => last.append(&mut keys),
            _ => self.keys.push_back((ticket, keys)),
        }
    }

    /// Forgets what is written up to `durable`: the store has it now.
    pub(super) fn written(&mut self, durable: u64) {
        while self.keys.front().is_some_and(|(t, _)| *t <= durable) {
            let (ticket, keys) = self.keys.pop_front().expect("checked");
            for k in keys {
                match k {
                    Key::Offer(id) => forget(&mut self.offers, &id, ticket),
                    Key::Deal(id) => forget(&mut self.deals, &id, ticket),
                    Key::Result(id) => forget(&mut self.results, &id, ticket),
                    Key::Nonce(a, n) => {
                        if self.nonces.get(&(a, n)) == Some(&ticket) {
                            self.nonces.remove(&(a, n));
                        }
                    }
                }
            }
        }
    }

    /// Whether no write is in flight.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.offers.is_empty() && self.deals.is_empty() && self.nonces.is_empty()
    }

    /// Gives back the room a burst left empty.
    pub(super) fn shrink(&mut self) {
        shrink(&mut self.offers);
        shrink(&mut self.deals);
        shrink(&mut self.results);
        shrink(&mut self.nonces);
        self.keys.shrink_to(self.keys.len() * 2);
    }

    /// Forgets everything (the core reloaded from the store).
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The offer as last written, if a write in flight has it.
    pub(super) fn offer(&self, id: &B256) -> Option<&OfferRecord> {
        self.offers.get(id).map(|(_, o)| o)
    }

    /// The deal as last written, if a write in flight has it.
    pub(super) fn deal(&self, id: &B256) -> Option<&DealRecord> {
        self.deals.get(id).map(|(_, d)| d)
    }

    /// `Some(result or none)` if a write in flight sets or deletes deal `id`'s result.
    pub(super) fn result(&self, id: &B256) -> Option<Option<&ResultRecord>> {
        self.results.get(id).map(|(_, r)| r.as_ref())
    }

    /// Whether a write in flight spends `nonce` of `account`.
    pub(super) fn nonce_used(&self, account: Address, nonce: U256) -> bool {
        self.nonces.contains_key(&(account, nonce))
    }
}
