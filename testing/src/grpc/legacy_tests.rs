//! Per service, what a request naming no resource by AIP-122 acts on and
//! how its operation is named.

use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use tonic::Code;

use super::super::descriptors::method_types;
use super::super::methods::googleapis_row;
use super::super::resource::{self, Plan};
use super::Naming;

/// Sets the string at `path` (`cluster.cluster_name`), making the messages
/// on the way.
fn set(message: &mut DynamicMessage, path: &str, value: &str) {
    match path.split_once('.') {
        None => message.set_field_by_name(path, Value::String(value.to_owned())),
        Some((head, rest)) => {
            let field = message.descriptor().get_field_by_name(head).unwrap();
            let mut inner = match message.get_field(&field).as_message() {
                Some(m) => m.clone(),
                None => DynamicMessage::new(field.kind().as_message().unwrap().clone()),
            };
            set(&mut inner, rest, value);
            message.set_field(&field, Value::Message(inner));
        }
    }
}

/// The plan of table method `method` for a request with `fields` set.
fn plan(method: &str, fields: &[(&str, &str)], project: Option<&str>) -> Result<Plan, Code> {
    let types = method_types(googleapis_row(method).unwrap()).unwrap();
    let mut request = DynamicMessage::new(types.request.clone());
    for (path, value) in fields {
        set(&mut request, path, value);
    }
    resource::plan(&types, &request, project).map_err(|s| s.code())
}

fn ok(method: &str, fields: &[(&str, &str)]) -> (String, Naming) {
    let plan = plan(method, fields, None).unwrap();
    (plan.target, plan.naming)
}

const CREATE_CLUSTER: &str = "/google.cloud.dataproc.v1.ClusterController/CreateCluster";
const RECOGNIZE: &str = "/google.cloud.speech.v1.Speech/LongRunningRecognize";

#[test]
fn dataproc_names_clusters_and_jobs_under_project_and_region() {
    let cluster = [
        ("project_id", "p"),
        ("region", "us-central1"),
        ("cluster.cluster_name", "c"),
    ];
    let (target, naming) = ok(CREATE_CLUSTER, &cluster);
    assert_eq!(target, "projects/p/regions/us-central1/clusters/c");
    assert_eq!(naming, Naming::Location);
    let delete = "/google.cloud.dataproc.v1.ClusterController/DeleteCluster";
    let fields = [("project_id", "p"), ("region", "r"), ("cluster_name", "c")];
    assert_eq!(ok(delete, &fields).0, "projects/p/regions/r/clusters/c");
    let job = [
        ("project_id", "p"),
        ("region", "r"),
        ("job.reference.job_id", "j"),
        ("job.placement.cluster_name", "c"),
    ];
    let submit = "/google.cloud.dataproc.v1.JobController/SubmitJobAsOperation";
    assert_eq!(ok(submit, &job).0, "projects/p/regions/r/jobs/j");
}

#[test]
fn a_required_field_left_empty_is_invalid_argument() {
    let no_region = [("project_id", "p"), ("cluster.cluster_name", "c")];
    assert_eq!(
        plan(CREATE_CLUSTER, &no_region, None).unwrap_err(),
        Code::InvalidArgument
    );
    let no_audio = [("config.language_code", "en-US")];
    assert_eq!(
        plan(RECOGNIZE, &no_audio, None).unwrap_err(),
        Code::InvalidArgument
    );
}

#[test]
fn datastore_names_indexes_and_projects() {
    let delete = "/google.datastore.admin.v1.DatastoreAdmin/DeleteIndex";
    let fields = [("project_id", "p"), ("index_id", "i")];
    assert_eq!(ok(delete, &fields).0, "projects/p/indexes/i");
    let export = "/google.datastore.admin.v1.DatastoreAdmin/ExportEntities";
    let fields = [("project_id", "p"), ("output_url_prefix", "gs://b")];
    assert_eq!(
        ok(export, &fields),
        ("projects/p".to_owned(), Naming::Location)
    );
}

#[test]
fn speech_video_and_vision_name_no_resource() {
    let audio = [("config.language_code", "en-US"), ("audio.uri", "gs://b/a")];
    assert_eq!(
        ok(RECOGNIZE, &audio),
        (String::new(), Naming::Number(String::new()))
    );
    let beta = "/google.cloud.speech.v1p1beta1.Speech/LongRunningRecognize";
    assert_eq!(ok(beta, &audio).1, Naming::Number(String::new()));

    let video = "/google.cloud.videointelligence.v1.VideoIntelligenceService/AnnotateVideo";
    let types = method_types(googleapis_row(video).unwrap()).unwrap();
    let mut request = DynamicMessage::new(types.request.clone());
    let features = types.request.get_field_by_name("features").unwrap();
    request.set_field(&features, Value::List(vec![Value::EnumNumber(1)]));
    let plan = resource::plan(&types, &request, Some("my-project")).unwrap();
    assert_eq!(plan.target, "");
    let prefix = "projects/my-project/locations/us-east1/operations/";
    assert_eq!(plan.naming, Naming::Number(prefix.to_owned()));

    let files = "/google.cloud.vision.v1p4beta1.ImageAnnotator/AsyncBatchAnnotateFiles";
    let types = method_types(googleapis_row(files).unwrap()).unwrap();
    let mut request = DynamicMessage::new(types.request.clone());
    let requests = types.request.get_field_by_name("requests").unwrap();
    let one = DynamicMessage::new(requests.kind().as_message().unwrap().clone());
    request.set_field(&requests, Value::List(vec![Value::Message(one)]));
    let plan = resource::plan(&types, &request, None).unwrap();
    assert_eq!(plan.naming, Naming::Prefix("operations/".to_owned()));
}

#[test]
fn service_management_names_operations_after_the_service() {
    let create = "/google.api.servicemanagement.v1.ServiceManager/CreateService";
    let (target, naming) = ok(create, &[("service.service_name", "s.example.com")]);
    assert_eq!(target, "services/s.example.com");
    let services = "operations/services.s.example.com-".to_owned();
    assert_eq!(naming, Naming::Number(services));
    let submit = "/google.api.servicemanagement.v1.ServiceManager/SubmitConfigSource";
    let fields = [("service_name", "s"), ("config_source.id", "c")];
    let configs = "operations/serviceConfigs.s:".to_owned();
    assert_eq!(ok(submit, &fields).1, Naming::Prefix(configs));
}

#[test]
fn asset_transfer_street_view_and_shell_name_their_own_operations() {
    let analyze = "/google.cloud.asset.v1.AssetService/AnalyzeIamPolicyLongrunning";
    let fields = [
        ("analysis_query.scope", "organizations/1"),
        ("output_config.gcs_destination.uri", "gs://b/o"),
    ];
    let prefix = "organizations/1/operations/AnalyzeIamPolicyLongrunning/".to_owned();
    let expected = ("organizations/1".to_owned(), Naming::Number(prefix));
    assert_eq!(ok(analyze, &fields), expected);

    let run = "/google.storagetransfer.v1.StorageTransferService/RunTransferJob";
    let fields = [("job_name", "transferJobs/123"), ("project_id", "p")];
    let prefix = "transferOperations/transferJobs-123-".to_owned();
    assert_eq!(
        ok(run, &fields),
        ("transferJobs/123".to_owned(), Naming::Number(prefix))
    );

    let get = "/google.streetview.publish.v1.StreetViewPublishService/GetPhotoSequence";
    assert_eq!(
        ok(get, &[("sequence_id", "s1")]).1,
        Naming::Exact("s1".to_owned())
    );

    let add = "/google.cloud.shell.v1.CloudShellService/AddPublicKey";
    let env = "users/me/environments/default";
    let expected = (env.to_owned(), Naming::Prefix("operations/".to_owned()));
    assert_eq!(
        ok(add, &[("environment", env), ("key", "ssh-ed25519 A")]),
        expected
    );
}

#[test]
fn fields_named_after_resource_types_scopes_and_carried_names_are_targets() {
    let profile = "projects/p/locations/l/conversationProfiles/c";
    let set_config = "/google.cloud.dialogflow.v2.ConversationProfiles/SetSuggestionFeatureConfig";
    let fields = [
        ("conversation_profile", profile),
        (
            "suggestion_feature_config.conversation_model_config.model",
            "m",
        ),
    ];
    assert_eq!(
        ok(set_config, &fields),
        (profile.to_owned(), Naming::Location)
    );

    let env = "projects/p/locations/l/environments/e";
    let upgrade = "/google.cloud.orchestration.airflow.service.v1.Environments/CheckUpgrade";
    assert_eq!(ok(upgrade, &[("environment", env)]).0, env);

    let report = "/google.cloud.auditmanager.v1.AuditManager/GenerateAuditReport";
    let fields = [
        ("scope", "projects/p/locations/l"),
        ("compliance_framework", "f"),
    ];
    assert_eq!(ok(report, &fields).0, "projects/p/locations/l");

    let spec = "projects/p/locations/l/encryptionSpec";
    let init = "/google.cloud.dialogflow.v2.EncryptionSpecService/InitializeEncryptionSpec";
    assert_eq!(ok(init, &[("encryption_spec.name", spec)]).0, spec);
}

#[test]
fn collections_are_plural() {
    assert_eq!(super::plural("cluster"), "clusters");
    assert_eq!(super::plural("index"), "indexes");
    assert_eq!(super::plural("policy"), "policies");
    assert_eq!(super::plural("photo_sequence"), "photoSequences");
}

#[test]
fn operation_names_follow_the_naming() {
    assert_eq!(
        Naming::Location.name("projects/p/regions/r", 3),
        "projects/p/regions/r/operations/op-3"
    );
    assert_eq!(Naming::Number(String::new()).name("", 7), "7");
    assert_eq!(
        Naming::Prefix("operations/".into()).name("", 2),
        "operations/op-2"
    );
    assert_eq!(Naming::Exact("s".into()).name("", 9), "s");
}
