//! Exec streams through a real guest handler and a yamux client over an in-memory pipe.

#[cfg(test)]
mod common;

#[cfg(test)]
mod tests {

    use super::common::*;
    use agentlab_core::api::channel::{ExecUser, StreamRequest};
    use agentlab_core::api::frame::Frame;
    use bytes::Bytes;
    use futures::{SinkExt as _, StreamExt as _};

    #[tokio::test]
    async fn exit_codes_and_separate_streams() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let out = run(
            &client,
            exec_req(&[
                "sh",
                "-c",
                "echo out; echo err >&2; echo $HOME $LANG; exit 7",
            ]),
        )
        .await;
        assert_eq!(out.code(), 7);
        assert_eq!(out.err(), "err\n");
        assert!(out.out().starts_with("out\n"), "{}", out.out());
        let id = run(&client, exec_req(&["id", "-u"])).await;
        if is_root() {
            assert_eq!(
                id.out().trim(),
                "1000",
                "agent execs drop to the agent user"
            );
            assert!(out.out().contains("/tmp C.UTF-8"), "{}", out.out());
            let mut req = exec_req(&["sh", "-c", "id -u; pwd; echo $FOO"]);
            req.user = ExecUser::Root;
            req.cwd = Some("/".into());
            req.env.insert("FOO".into(), "bar".into());
            let r = run(&client, req).await;
            assert_eq!(r.out(), "0\n/\nbar\n");
        } else {
            assert_eq!(id.out().trim(), nix::unistd::geteuid().to_string());
            let mut chan = client.open().await;
            let mut req = exec_req(&["true"]);
            req.user = ExecUser::Root;
            chan.send(Frame::Request(StreamRequest::Exec(req)))
                .await
                .expect("send");
            match chan.next().await {
                Some(Ok(Frame::Error(e))) => assert!(e.contains("root exec needs"), "{e}"),
                other => panic!("{other:?}"),
            }
        }
        let err = client
            .request(StreamRequest::Exec(exec_req(&["/no/such/program"])))
            .await
            .expect_err("spawn failure");
        assert!(err.contains("/no/such/program"), "{err}");
        let err = client
            .request(StreamRequest::Exec(exec_req(&[])))
            .await
            .expect_err("invalid request");
        assert!(err.contains("argv"), "{err}");
    }

    #[tokio::test]
    async fn stdin_is_echoed_through_cat() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mut chan = client
            .request(StreamRequest::Exec(exec_req(&["cat"])))
            .await
            .expect("cat");
        chan.send(Frame::Stdin(Bytes::from_static(b"hello ")))
            .await
            .expect("stdin");
        chan.send(Frame::Stdin(Bytes::from_static(b"world")))
            .await
            .expect("stdin");
        chan.send(Frame::StdinEof).await.expect("eof");
        let out = collect(&mut chan).await;
        assert_eq!(out.out(), "hello world");
        assert_eq!(out.code(), 0);
    }

    #[tokio::test]
    async fn sixty_four_mib_of_output_arrive_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mut chan = client
            .request(StreamRequest::Exec(exec_req(&[
                "sh",
                "-c",
                "head -c 67108864 /dev/zero; head -c 1048576 /dev/zero >&2",
            ])))
            .await
            .expect("exec");
        let (mut out, mut err) = (0usize, 0usize);
        let mut exit = None;
        while let Some(f) = chan.next().await {
            match f.expect("frame") {
                Frame::Stdout(b) => {
                    assert!(b.iter().all(|&x| x == 0));
                    out += b.len();
                }
                Frame::Stderr(b) => err += b.len(),
                Frame::Exit(e) => exit = Some(e),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(out, 64 << 20);
        assert_eq!(err, 1 << 20);
        assert_eq!(exit.expect("exit").code, 0);
    }

    #[tokio::test]
    async fn sigint_ends_sleep_with_130() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mut chan = client
            .request(StreamRequest::Exec(exec_req(&[
                "sh",
                "-c",
                "echo started; exec sleep 30",
            ])))
            .await
            .expect("exec");
        match chan.next().await {
            Some(Ok(Frame::Stdout(b))) => assert_eq!(&b[..], b"started\n"),
            other => panic!("{other:?}"),
        }
        chan.send(Frame::Signal(2)).await.expect("signal");
        let out = collect(&mut chan).await;
        let exit = out.exit.expect("exit");
        assert_eq!(exit.code, 130);
        assert_eq!(exit.signal, Some(2));
        assert!(!exit.timed_out);
    }

    #[tokio::test]
    async fn timeout_terminates_then_kills() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mut req = exec_req(&["sleep", "30"]);
        req.timeout_secs = Some(1);
        let out = run(&client, req).await;
        let exit = out.exit.expect("exit");
        assert!(exit.timed_out);
        assert_eq!((exit.code, exit.signal), (143, Some(15)));
        // A process that ignores SIGTERM is killed after the grace (1 s in these tests).
        let mut req = exec_req(&["sh", "-c", "trap '' TERM; sleep 30; echo survived"]);
        req.timeout_secs = Some(1);
        let out = run(&client, req).await;
        let exit = out.exit.expect("exit");
        assert!(exit.timed_out);
        assert_eq!((exit.code, exit.signal), (137, Some(9)));
        assert_eq!(out.out(), "");
    }

    #[tokio::test]
    async fn two_execs_run_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        // The first waits for its stdin; the second runs to its end meanwhile.
        let mut first = client
            .request(StreamRequest::Exec(exec_req(&["cat"])))
            .await
            .expect("first");
        let second = run(&client, exec_req(&["echo", "two"])).await;
        assert_eq!(second.out(), "two\n");
        first
            .send(Frame::Stdin(Bytes::from_static(b"one")))
            .await
            .expect("stdin");
        first.send(Frame::StdinEof).await.expect("eof");
        let first = collect(&mut first).await;
        assert_eq!((first.out().as_str(), first.code()), ("one", 0));
    }

    #[tokio::test]
    async fn a_vanished_client_kills_the_process_group() {
        let dir = tempfile::tempdir().expect("dir");
        let (client, _cancel) = guest(config(dir.path()));
        let mut chan = client
            .request(StreamRequest::Exec(exec_req(&[
                "sh",
                "-c",
                "sleep 30 & echo $!; wait",
            ])))
            .await
            .expect("exec");
        let pid: i32 = match chan.next().await {
            Some(Ok(Frame::Stdout(b))) => String::from_utf8_lossy(&b).trim().parse().expect("pid"),
            other => panic!("{other:?}"),
        };
        drop(chan);
        let pid = nix::unistd::Pid::from_raw(pid);
        for _ in 0..100 {
            // Gone, or a zombie waiting for its (also killed) parent's reaper.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the background sleep {pid} survived its client");
    }
}
