//! The library and tower-lro-testing each compile in their own copy of the
//! googleapis table of long-running methods (`data/grpc_lro_methods.tsv`,
//! `testing/data/grpc_lro_methods.tsv`): the methods the layer recognises
//! are the methods the server starts operations for.

#[test]
fn the_library_and_the_server_share_one_method_table() {
    let library = include_str!("../../data/grpc_lro_methods.tsv");
    let server = include_str!("../../testing/data/grpc_lro_methods.tsv");
    assert_eq!(library.lines().count(), 2667);
    assert!(
        library == server,
        "data/grpc_lro_methods.tsv and testing/data/grpc_lro_methods.tsv differ: copy one onto the other"
    );
}
