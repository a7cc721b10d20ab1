//! Just enough of the Chrome DevTools Protocol to take a screenshot of what the browser shows.

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::probe;

#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("the browser's target list is not available")]
    Targets,
    #[error("the browser has no open page")]
    NoPage,
    #[error("cannot talk to the page over CDP")]
    WebSocket {
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    #[error("the browser refused the screenshot: {message}")]
    Protocol { message: String },
    #[error("the screenshot did not arrive in time")]
    Timeout,
}

/// A PNG of the first page target, via `Page.captureScreenshot`.
pub async fn screenshot(port: u16) -> Result<Vec<u8>, CdpError> {
    let (status, body) = probe::http_get("127.0.0.1", port, "/json/list", Duration::from_secs(3))
        .await
        .ok_or(CdpError::Targets)?;
    if status != 200 {
        return Err(CdpError::Targets);
    }
    let targets: Vec<Value> = serde_json::from_slice(&body).map_err(|_| CdpError::Targets)?;
    let url = targets
        .iter()
        .find(|t| t["type"] == "page")
        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
        .ok_or(CdpError::NoPage)?
        .to_owned();
    tokio::time::timeout(Duration::from_secs(15), capture(&url))
        .await
        .map_err(|_| CdpError::Timeout)?
}

async fn capture(url: &str) -> Result<Vec<u8>, CdpError> {
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|source| CdpError::WebSocket { source })?;
    let request = json!({"id": 1, "method": "Page.captureScreenshot", "params": {"format": "png"}});
    socket
        .send(Message::text(request.to_string()))
        .await
        .map_err(|source| CdpError::WebSocket { source })?;
    while let Some(message) = socket.next().await {
        let message = message.map_err(|source| CdpError::WebSocket { source })?;
        let Message::Text(text) = message else { continue };
        let Ok(reply) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if reply["id"] != 1 {
            continue;
        }
        let _ = socket.close(None).await;
        if let Some(error) = reply.get("error") {
            return Err(CdpError::Protocol {
                message: error["message"].as_str().unwrap_or("unknown").to_owned(),
            });
        }
        let data = reply["result"]["data"].as_str().unwrap_or_default();
        return base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| CdpError::Protocol {
                message: "screenshot data is not base64".to_owned(),
            });
    }
    Err(CdpError::Protocol {
        message: "the connection closed before the reply".to_owned(),
    })
}
