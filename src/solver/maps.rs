//! Giving back the room of hash maps that a burst of records filled and then left: the
//! core, its overlay and the matcher keep records in maps whose capacity otherwise stays at
//! its peak (THREATS V3).

use std::collections::HashMap;

/// Shrinks `map` when a quarter or less of its capacity is used.
pub(crate) fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() <= map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}
