//! The one connection that LISTENs. A pooled client never surfaces notifications (the pool
//! owns its connection task), so this is a plain tokio-postgres connection of its own, polled
//! here. When it drops it reconnects with a backoff and says so (`Notice::Reconnected`), so
//! the runner re-reads what it may have missed: a notification is a wake-up, never the record.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::store::Notice;

pub fn spawn(config: tokio_postgres::Config) -> mpsc::UnboundedReceiver<Notice> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut first = true;
        let mut backoff = Duration::from_millis(100);
        while !tx.is_closed() {
            match listen_once(&config, &tx, &mut first).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "the notification connection failed; reconnecting");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    rx
}

/// Connects, LISTENs and forwards notifications until the connection ends.
async fn listen_once(
    config: &tokio_postgres::Config,
    tx: &mpsc::UnboundedSender<Notice>,
    first: &mut bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (messages_tx, mut messages) = mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN below to complete, and its notifications
    // arrive only through this poll.
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures_util::StreamExt::next(&mut stream).await {
            match message {
                Ok(message) => {
                    if messages_tx.send(message).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the notification connection ended");
                    break;
                }
            }
        }
    });
    client.batch_execute("LISTEN veneer").await?;
    if !std::mem::take(first) {
        // Whatever was announced while no connection listened is lost: re-read it all.
        let _ = tx.send(Notice::Reconnected);
    }
    while let Some(message) = messages.recv().await {
        let AsyncMessage::Notification(n) = message else {
            continue;
        };
        let notice = match n.payload().split_once(':') {
            Some(("cancel", id)) => Notice::CancelRequested(id.to_string()),
            Some(("ended", id)) => Notice::JobEnded(id.to_string()),
            _ => Notice::Changed,
        };
        if tx.send(notice).is_err() {
            break;
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}
