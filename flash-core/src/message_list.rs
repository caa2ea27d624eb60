//! [`MessageList`]: what [`Messages::read`](crate::Messages::read) hands out.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use crate::level::LevelTags;
use crate::message::Message;
use crate::messages::Messages;
use crate::view::MessageView;

/// The messages a read returned, oldest first: a slice of [`Message`]s shared with the request
/// handle, so reading hands out no copies (the handle keeps them for [`keep`], `len` and a
/// second read). A list keeps its request's handle alive, not the request.
///
/// It reads as a slice (`list[0]`, `list.len()`, `for m in &list`); [`MessageList::into_vec`]
/// (or `for m in list`) gives owned messages: copies of what the handle keeps, moved out only
/// from a list nothing else shares.
///
/// ```
/// use flash_core::{Level, Message, MessageList};
/// let list = MessageList::from(vec![Message::new(Level::INFO, "Saved.")]);
/// assert_eq!(list.len(), 1);
/// assert_eq!(list[0].text, "Saved.");
/// for message in &list {
///     assert_eq!(message.level, Level::INFO);
/// }
/// assert_eq!(list, vec![Message::new(Level::INFO, "Saved.")]);
/// ```
///
/// [`keep`]: crate::Messages::keep
#[derive(Clone)]
pub struct MessageList(Repr);

#[derive(Clone)]
enum Repr {
    /// A list of its own (made from a `Vec`, or a read that followed adds after an earlier
    /// read in the same request).
    Shared(Arc<Vec<Message>>),
    /// A request's first read: the messages sit in the handle's write-once cell
    /// ([`Messages::shown`]), borrowed through the handle, so the read allocates nothing.
    Shown(Messages),
}

/// One empty list for every request that finds nothing: an empty `Arc` still allocates.
static EMPTY: LazyLock<Arc<Vec<Message>>> = LazyLock::new(|| Arc::new(Vec::new()));

impl MessageList {
    /// The shared empty list.
    pub(crate) fn empty_shared() -> Arc<Vec<Message>> {
        Arc::clone(&EMPTY)
    }

    /// `messages` as the handle keeps them: the shared empty list when there are none.
    pub(crate) fn share(messages: Vec<Message>) -> Arc<Vec<Message>> {
        if messages.is_empty() {
            Self::empty_shared()
        } else {
            Arc::new(messages)
        }
    }

    /// A list sharing `messages`.
    pub(crate) fn shared(messages: Arc<Vec<Message>>) -> Self {
        MessageList(Repr::Shared(messages))
    }

    /// The list of `handle`'s first read, borrowed through it.
    pub(crate) fn shown(handle: Messages) -> Self {
        MessageList(Repr::Shown(handle))
    }

    fn as_slice(&self) -> &[Message] {
        match &self.0 {
            Repr::Shared(messages) => messages,
            Repr::Shown(handle) => handle.shown(),
        }
    }

    /// The messages, owned: moved out when nothing else shares them, copied otherwise (a
    /// request's first read stays its handle's: always copied).
    pub fn into_vec(self) -> Vec<Message> {
        match self.0 {
            Repr::Shared(messages) => Arc::unwrap_or_clone(messages),
            Repr::Shown(handle) => handle.shown().to_vec(),
        }
    }

    /// The messages as templates and JSON clients receive them, under the tag map `tags`.
    pub fn views(&self, tags: &LevelTags) -> Vec<MessageView> {
        self.iter().map(|m| m.view(tags)).collect()
    }
}

impl Default for MessageList {
    fn default() -> Self {
        MessageList::shared(Self::empty_shared())
    }
}

impl Deref for MessageList {
    type Target = [Message];

    fn deref(&self) -> &[Message] {
        self.as_slice()
    }
}

impl AsRef<[Message]> for MessageList {
    fn as_ref(&self) -> &[Message] {
        self.as_slice()
    }
}

impl PartialEq for MessageList {
    fn eq(&self, other: &MessageList) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for MessageList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Message>> for MessageList {
    fn from(messages: Vec<Message>) -> Self {
        MessageList::shared(Self::share(messages))
    }
}

impl From<MessageList> for Vec<Message> {
    fn from(list: MessageList) -> Self {
        list.into_vec()
    }
}

impl<'a> IntoIterator for &'a MessageList {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl IntoIterator for MessageList {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;

    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl PartialEq<Vec<Message>> for MessageList {
    fn eq(&self, other: &Vec<Message>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<[Message]> for MessageList {
    fn eq(&self, other: &[Message]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<MessageList> for Vec<Message> {
    fn eq(&self, other: &MessageList) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::Level;

    #[test]
    fn owned_messages_are_moved_when_unshared_and_copied_when_shared() {
        let list = MessageList::from(vec![Message::new(Level::INFO, "a")]);
        let shared = list.clone();
        let pointer = list[0].text.as_ptr();
        // Shared: a copy, the other holder keeps its own.
        let copied = shared.into_vec();
        assert_ne!(copied[0].text.as_ptr(), pointer);
        // Unshared now: moved out, the very same text.
        let moved = list.into_vec();
        assert_eq!(moved[0].text.as_ptr(), pointer);
    }

    #[test]
    fn empty_lists_share_one_allocation() {
        let a = MessageList::default();
        let b = MessageList::from(Vec::new());
        let (Repr::Shared(a_list), Repr::Shared(b_list)) = (&a.0, &b.0) else {
            panic!("an empty list of its own");
        };
        assert!(Arc::ptr_eq(a_list, b_list));
        assert!(a.is_empty());
        assert_eq!(format!("{a:?}"), "[]");
    }
}
