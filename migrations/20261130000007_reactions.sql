-- A WhatsApp reaction (👍 on a dispatch) is its own kind of message: read as an answer when it
-- says yes to a question, otherwise kept but never filed as a comment.
ALTER TABLE messages DROP CONSTRAINT messages_kind_check;
ALTER TABLE messages ADD CONSTRAINT messages_kind_check
    CHECK (kind IN ('text', 'location', 'media', 'interactive', 'template', 'reaction', 'unsupported'));
