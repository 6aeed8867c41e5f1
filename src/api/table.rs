//! Server-side printing: the `meta.k8s.io/v1` Table columns and cells that kubectl shows.
//!
//! A reimplementation of upstream's `pkg/printers/internalversion` print handlers (as of
//! Kubernetes 1.33), of the apiserver's default table convertor (`Name`, `Created At`) for
//! built-in resources that have no printer, and of apimachinery's `duration.HumanDuration`.
//!
//! Upstream's server always prints with `Wide: true`, so every row carries every column,
//! including those with priority 1 that kubectl shows only with `-o wide`. Cell types follow
//! upstream exactly (strings, `int64` numbers, booleans): kubectl prints them verbatim.
//!
//! Objects are read as stored JSON (the external, versioned form). Where upstream prints from the
//! internal type, the v1-to-internal conversion and the v1 defaults that affect a cell are applied
//! here (e.g. `status.podIP` when `status.podIPs` is empty, `spec.replicas` defaulting to 1).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

/// One column of a Table (`columnDefinitions[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Upstream's column name, e.g. `Name`, `Up-to-date`; kubectl prints it upper-cased.
    pub name: &'static str,
    /// `string`, `integer`, `date`, `number` or `boolean`.
    pub type_: &'static str,
    /// `name` for the column that holds the object's name, else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: shown only with `-o wide`.
    pub priority: i32,
}

// Column descriptions: the API field documentation upstream takes from `SwaggerDoc()`.
const META_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const META_CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const POD_STATUS_POD_IP: &str =
    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const POD_SPEC_NODE_NAME: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const POD_STATUS_NOMINATED_NODE_NAME: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const POD_SPEC_READINESS_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
const POD_SPEC_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const RC_SPEC_REPLICAS: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const RC_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const RC_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller";
const RC_STATUS_READY_REPLICAS: &str = "The number of ready replicas for this replication controller.";
const RS_SPEC_REPLICAS: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const RS_SPEC_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const RS_STATUS_REPLICAS: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const RS_STATUS_READY_REPLICAS: &str =
    "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
const DS_STATUS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const DS_STATUS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const DS_STATUS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
const DS_STATUS_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
const DS_STATUS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
const DS_SPEC_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const DEPLOY_STATUS_UPDATED: &str =
    "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
const DEPLOY_STATUS_AVAILABLE: &str =
    "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
const DEPLOY_SPEC_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
const CONTROLLER_REVISION_REVISION: &str = "Revision indicates the revision of the state represented by Data.";
const JOB_STATUS_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
const JOB_SPEC_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const CRONJOB_SPEC_SCHEDULE: &str = "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
const CRONJOB_SPEC_TIME_ZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
const CRONJOB_SPEC_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
const CRONJOB_STATUS_ACTIVE: &str = "A list of pointers to currently running jobs.";
const CRONJOB_STATUS_LAST_SCHEDULE: &str = "Information when was the last time the job was successfully scheduled.";
const SVC_SPEC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const SVC_SPEC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SVC_SPEC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const SVC_SPEC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SVC_SPEC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
const ENDPOINTS_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
const NODE_INFO_KUBELET_VERSION: &str = "Kubelet Version reported by the node.";
const NODE_INFO_OS_IMAGE: &str =
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
const NODE_INFO_KERNEL_VERSION: &str =
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
const NODE_INFO_CONTAINER_RUNTIME: &str =
    "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
const NODE_STATUS_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
const EVENT_LAST_TIMESTAMP: &str = "The time at which the most recent occurrence of this event was recorded.";
const EVENT_FIRST_TIMESTAMP: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
const EVENT_TYPE: &str = "Type of this event (Normal, Warning), new types could be added in the future";
const EVENT_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
const EVENT_INVOLVED_OBJECT: &str = "The object that this event is about.";
const EVENT_SOURCE: &str = "The component reporting this event. Should be a short machine understandable string.";
const EVENT_MESSAGE: &str = "A human-readable description of the status of this operation.";
const EVENT_COUNT: &str = "The number of times this event has occurred.";
const OBJECT_REFERENCE_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
const SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
const SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
const CONFIGMAP_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
const SA_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
const PV_SPEC_CAPACITY: &str = "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity";
const PV_SPEC_ACCESS_MODES: &str = "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes";
const PV_SPEC_RECLAIM_POLICY: &str = "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming";
const PV_SPEC_CLAIM_REF: &str = "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding";
const PV_SPEC_VOLUME_MODE: &str = "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.";
const PV_STATUS_PHASE: &str = "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase";
const PV_STATUS_REASON: &str = "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.";
const PVC_STATUS_PHASE: &str = "phase represents the current phase of PersistentVolumeClaim.";
const PVC_STATUS_CAPACITY: &str = "capacity represents the actual resources of the underlying volume.";
const PVC_STATUS_ACCESS_MODES: &str = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1";
const PVC_SPEC_VOLUME_NAME: &str = "volumeName is the binding reference to the PersistentVolume backing this claim.";
const PVC_SPEC_VOLUME_MODE: &str = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.";
const HPA_SPEC_SCALE_TARGET_REF: &str = "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.";
const HPA_SPEC_METRICS: &str = "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond. If not set, the default metric will be set to 80% average CPU utilization.";
const HPA_SPEC_MIN_REPLICAS: &str = "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.";
const HPA_SPEC_MAX_REPLICAS: &str = "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.";
const HPA_STATUS_CURRENT_REPLICAS: &str =
    "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.";
const NETPOL_SPEC_POD_SELECTOR: &str = "podSelector selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.";
const ROLE_BINDING_ROLE_REF: &str = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.";
const CLUSTER_ROLE_BINDING_ROLE_REF: &str = "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.";
const LEASE_SPEC_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
const SC_PROVISIONER: &str = "provisioner indicates the type of the provisioner.";
const SC_RECLAIM_POLICY: &str = "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.";
const SC_VOLUME_BINDING_MODE: &str = "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.";
const SC_ALLOW_VOLUME_EXPANSION: &str = "allowVolumeExpansion shows whether the storage class allow volume expand.";
const PC_VALUE: &str = "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec.";
const PC_GLOBAL_DEFAULT: &str = "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority.";
const PC_PREEMPTION_POLICY: &str = "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset.";
const EPS_ADDRESS_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
const EPS_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
const EPS_ENDPOINTS: &str =
    "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";
const CSI_ATTACH_REQUIRED: &str = "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting. The CSI external-attacher coordinates with CSI volume driver and updates the volumeattachment status when the attach operation is complete. If the CSIDriverRegistry feature gate is enabled and the value is specified to false, the attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis field is immutable.";
const CSI_POD_INFO_ON_MOUNT: &str = "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true. If set to false, pod information will not be passed on mount. Default is false.\n\nThe CSI driver specifies podInfoOnMount as part of driver deployment. If true, Kubelet will pass pod information as VolumeContext in the CSI NodePublishVolume() calls. The CSI driver is responsible for parsing and validating the information passed in as VolumeContext.\n\nThe following VolumeContext will be passed if podInfoOnMount is set to true. This list might grow, but the prefix will be used. \"csi.storage.k8s.io/pod.name\": pod.Name \"csi.storage.k8s.io/pod.namespace\": pod.Namespace \"csi.storage.k8s.io/pod.uid\": string(pod.UID) \"csi.storage.k8s.io/ephemeral\": \"true\" if the volume is an ephemeral inline volume\ndefined by a CSIVolumeSource, otherwise \"false\"\n\n\"csi.storage.k8s.io/ephemeral\" is a new feature in Kubernetes 1.16. It is only required for drivers which support both the \"Persistent\" and \"Ephemeral\" VolumeLifecycleMode. Other drivers can leave pod info disabled and/or ignore this field. As Kubernetes 1.15 doesn't support this field, drivers can only support one mode when deployed on such a cluster and the deployment determines which mode that is, for example via a command line parameter of the driver.\n\nThis field was immutable in Kubernetes < 1.29 and now is mutable.";
const CSI_STORAGE_CAPACITY: &str = "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true.\n\nThe check can be enabled immediately when deploying a driver. In that case, provisioning new volumes with late binding will pause until the driver deployment has published some suitable CSIStorageCapacity object.\n\nAlternatively, the driver can be deployed with the field unset or false and it can be flipped later when storage capacity information has been published.\n\nThis field was immutable in Kubernetes <= 1.22 and now is mutable.";
const CSI_TOKEN_REQUESTS: &str = "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication. Kubelet will pass the tokens in VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and validate the following VolumeContext: \"csi.storage.k8s.io/serviceAccount.tokens\": {\n\"<audience>\": {\n\"token\": <token>,\n\"expirationTimestamp\": <expiration timestamp in RFC3339>,\n},\n...\n}\n\nNote: Audience in each TokenRequest should be different and at most one token is empty string. To receive a new token after expiry, RequiresRepublish can be used to trigger NodePublishVolume periodically.";
const CSI_REQUIRES_REPUBLISH: &str = "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume. This field defaults to false.\n\nNote: After a successful initial NodePublishVolume call, subsequent calls to NodePublishVolume should only update the contents of the volume. New mount points will not be seen by a running container.";
const CSI_MODES: &str = "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The default if the list is empty is \"Persistent\", which is the usage defined by the CSI specification and implemented in Kubernetes via the usual PV/PVC mechanism.\n\nThe other mode is \"Ephemeral\". In this mode, volumes are defined inline inside the pod spec with CSIVolumeSource and their lifecycle is tied to the lifecycle of that pod. A driver has to be aware of this because it is only going to get a NodePublishVolume call for such a volume.\n\nFor more information about implementing this mode, see https://kubernetes-csi.github.io/docs/ephemeral-local-volumes.html A driver can support one or more of these modes and more modes may be added in the future.\n\nThis field is beta. This field is immutable.";
const VA_ATTACHER: &str = "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().";
const VA_PV: &str = "persistentVolumeName represents the name of the persistent volume to attach.";
const VA_NODE: &str = "nodeName represents the node that the volume should be attached to.";
const VA_ATTACHED: &str = "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher.";
const CSR_SIGNER_NAME: &str = "signerName indicates the requested signer, and is a qualified name.\n\nList/watch requests for CertificateSigningRequests can filter on this field using a \"spec.signerName=NAME\" fieldSelector.\n\nWell-known Kubernetes signers are:\n1. \"kubernetes.io/kube-apiserver-client\": issues client certificates that can be used to authenticate to kube-apiserver.\nRequests for this signer are never auto-approved by kube-controller-manager, can be issued by the \"csrsigning\" controller in kube-controller-manager.\n2. \"kubernetes.io/kube-apiserver-client-kubelet\": issues client certificates that kubelets use to authenticate to kube-apiserver.\nRequests for this signer can be auto-approved by the \"csrapproving\" controller in kube-controller-manager, and can be issued by the \"csrsigning\" controller in kube-controller-manager.\n3. \"kubernetes.io/kubelet-serving\" issues serving certificates that kubelets use to serve TLS endpoints, which kube-apiserver can connect to securely.\nRequests for this signer are never auto-approved by kube-controller-manager, and can be issued by the \"csrsigning\" controller in kube-controller-manager.\n\nMore details are available at https://k8s.io/docs/reference/access-authn-authz/certificate-signing-requests/#kubernetes-signers\n\nCustom signerNames can also be specified. The signer defines:\n1. Trust distribution: how trust (CA bundles) are distributed.\n2. Permitted subjects: and behavior when a disallowed subject is requested.\n3. Required, permitted, or forbidden x509 extensions in the request (including whether subjectAltNames are allowed, which types, restrictions on allowed values) and behavior when a disallowed extension is requested.\n4. Required, permitted, or forbidden key usages / extended key usages.\n5. Expiration/certificate lifetime: whether it is fixed by the signer, configurable by the admin.\n6. Whether or not requests for CA certificates are allowed.";
const CSR_REQUEST: &str = "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded.";
const CSR_EXPIRATION_SECONDS: &str = "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes signers will honor this field as long as the requested duration is not greater than the maximum duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\nCertificate signers may not honor this field for various reasons:\n\n1. Old signer that is unaware of the field (such as the in-tree\nimplementations prior to v1.22)\n2. Signer whose configured maximum is shorter than the requested duration\n3. Signer whose configured minimum is longer than the requested duration\n\nThe minimum valid value for expirationSeconds is 600, i.e. 10 minutes.";
const CSR_CONDITIONS: &str =
    "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".";

// Literal descriptions upstream uses for columns that are not a single API field.
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";

// ---------------------------------------------------------------------------------------------
// Resource kinds
// ---------------------------------------------------------------------------------------------

/// The printers this module knows, keyed by (group, plural resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    PodTemplate,
    ReplicationController,
    Service,
    Endpoints,
    ConfigMap,
    Secret,
    Namespace,
    Node,
    Event,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ResourceQuota,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    ControllerRevision,
    Job,
    CronJob,
    EndpointSlice,
    Ingress,
    IngressClass,
    NetworkPolicy,
    RoleBinding,
    ClusterRoleBinding,
    Lease,
    PriorityClass,
    StorageClass,
    CsiDriver,
    CsiNode,
    VolumeAttachment,
    PodDisruptionBudget,
    HorizontalPodAutoscaler,
    RuntimeClass,
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
    CertificateSigningRequest,
    /// Built-in resources that upstream serves with the apiserver's default table convertor
    /// (`Name`, `Created At`): roles, clusterroles, limitranges, customresourcedefinitions.
    DefaultConvertor,
    /// Anything else (custom resources and unknown types): `Name`, `Age`, like a CRD without
    /// `additionalPrinterColumns`.
    Generic,
}

fn printer(group: &str, resource: &str) -> Printer {
    use Printer::*;
    match (group, resource) {
        ("", "pods") => Pod,
        ("", "podtemplates") => PodTemplate,
        ("", "replicationcontrollers") => ReplicationController,
        ("", "services") => Service,
        ("", "endpoints") => Endpoints,
        ("", "configmaps") => ConfigMap,
        ("", "secrets") => Secret,
        ("", "namespaces") => Namespace,
        ("", "nodes") => Node,
        ("", "events") | ("events.k8s.io", "events") => Event,
        ("", "serviceaccounts") => ServiceAccount,
        ("", "persistentvolumes") => PersistentVolume,
        ("", "persistentvolumeclaims") => PersistentVolumeClaim,
        ("", "resourcequotas") => ResourceQuota,
        ("", "limitranges") => DefaultConvertor,
        ("apps", "deployments") => Deployment,
        ("apps", "replicasets") => ReplicaSet,
        ("apps", "statefulsets") => StatefulSet,
        ("apps", "daemonsets") => DaemonSet,
        ("apps", "controllerrevisions") => ControllerRevision,
        ("batch", "jobs") => Job,
        ("batch", "cronjobs") => CronJob,
        ("discovery.k8s.io", "endpointslices") => EndpointSlice,
        ("networking.k8s.io", "ingresses") => Ingress,
        ("networking.k8s.io", "ingressclasses") => IngressClass,
        ("networking.k8s.io", "networkpolicies") => NetworkPolicy,
        ("rbac.authorization.k8s.io", "rolebindings") => RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => ClusterRoleBinding,
        ("rbac.authorization.k8s.io", "roles") | ("rbac.authorization.k8s.io", "clusterroles") => DefaultConvertor,
        ("apiextensions.k8s.io", "customresourcedefinitions") => DefaultConvertor,
        ("coordination.k8s.io", "leases") => Lease,
        ("scheduling.k8s.io", "priorityclasses") => PriorityClass,
        ("storage.k8s.io", "storageclasses") => StorageClass,
        ("storage.k8s.io", "csidrivers") => CsiDriver,
        ("storage.k8s.io", "csinodes") => CsiNode,
        ("storage.k8s.io", "volumeattachments") => VolumeAttachment,
        ("policy", "poddisruptionbudgets") => PodDisruptionBudget,
        ("autoscaling", "horizontalpodautoscalers") => HorizontalPodAutoscaler,
        ("node.k8s.io", "runtimeclasses") => RuntimeClass,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => MutatingWebhookConfiguration,
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => ValidatingWebhookConfiguration,
        ("certificates.k8s.io", "certificatesigningrequests") => CertificateSigningRequest,
        _ => Generic,
    }
}

// ---------------------------------------------------------------------------------------------
// Columns
// ---------------------------------------------------------------------------------------------

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column { name, type_, format: "", description, priority: 0 }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column { name, type_, format: "", description, priority: 1 }
}

const NAME: Column = Column { name: "Name", type_: "string", format: "name", description: META_NAME, priority: 0 };
const AGE: Column = col("Age", "string", META_CREATION_TIMESTAMP);
const WIDE_CONTAINERS: Column = wide("Containers", "string", CONTAINERS_DESC);
const WIDE_IMAGES: Column = wide("Images", "string", IMAGES_DESC);

/// Columns for a resource (group "" = core; resource is the plural, e.g. "pods", "deployments").
/// Unknown resources get NAME, AGE.
pub fn columns(group: &str, resource: &str) -> Vec<Column> {
    use Printer::*;
    match printer(group, resource) {
        Pod => vec![
            NAME,
            col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "The aggregate status of the containers in this pod."),
            col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            wide("IP", "string", POD_STATUS_POD_IP),
            wide("Node", "string", POD_SPEC_NODE_NAME),
            wide("Nominated Node", "string", POD_STATUS_NOMINATED_NODE_NAME),
            wide("Readiness Gates", "string", POD_SPEC_READINESS_GATES),
        ],
        PodTemplate => vec![
            NAME,
            col("Containers", "string", CONTAINERS_DESC),
            col("Images", "string", IMAGES_DESC),
            col("Pod Labels", "string", "The labels for the pod template."),
        ],
        ReplicationController => vec![
            NAME,
            col("Desired", "integer", RC_SPEC_REPLICAS),
            col("Current", "integer", RC_STATUS_REPLICAS),
            col("Ready", "integer", RC_STATUS_READY_REPLICAS),
            AGE,
            WIDE_CONTAINERS,
            WIDE_IMAGES,
            wide("Selector", "string", RC_SPEC_SELECTOR),
        ],
        Service => vec![
            NAME,
            col("Type", "string", SVC_SPEC_TYPE),
            col("Cluster-IP", "string", SVC_SPEC_CLUSTER_IP),
            col("External-IP", "string", SVC_SPEC_EXTERNAL_IPS),
            col("Port(s)", "string", SVC_SPEC_PORTS),
            AGE,
            wide("Selector", "string", SVC_SPEC_SELECTOR),
        ],
        Endpoints => vec![NAME, col("Endpoints", "string", ENDPOINTS_SUBSETS), AGE],
        ConfigMap => vec![NAME, col("Data", "string", CONFIGMAP_DATA), AGE],
        Secret => vec![NAME, col("Type", "string", SECRET_TYPE), col("Data", "string", SECRET_DATA), AGE],
        Namespace => vec![NAME, col("Status", "string", "The status of the namespace"), AGE],
        Node => vec![
            NAME,
            col("Status", "string", "The status of the node"),
            col("Roles", "string", "The roles of the node"),
            AGE,
            col("Version", "string", NODE_INFO_KUBELET_VERSION),
            wide("Internal-IP", "string", NODE_STATUS_ADDRESSES),
            wide("External-IP", "string", NODE_STATUS_ADDRESSES),
            wide("OS-Image", "string", NODE_INFO_OS_IMAGE),
            wide("Kernel-Version", "string", NODE_INFO_KERNEL_VERSION),
            wide("Container-Runtime", "string", NODE_INFO_CONTAINER_RUNTIME),
        ],
        Event => vec![
            col("Last Seen", "string", EVENT_LAST_TIMESTAMP),
            col("Type", "string", EVENT_TYPE),
            col("Reason", "string", EVENT_REASON),
            col("Object", "string", EVENT_INVOLVED_OBJECT),
            wide("Subobject", "string", OBJECT_REFERENCE_FIELD_PATH),
            wide("Source", "string", EVENT_SOURCE),
            col("Message", "string", EVENT_MESSAGE),
            wide("First Seen", "string", EVENT_FIRST_TIMESTAMP),
            wide("Count", "string", EVENT_COUNT),
            Column { priority: 1, ..NAME },
        ],
        ServiceAccount => vec![NAME, col("Secrets", "string", SA_SECRETS), AGE],
        PersistentVolume => vec![
            NAME,
            col("Capacity", "string", PV_SPEC_CAPACITY),
            col("Access Modes", "string", PV_SPEC_ACCESS_MODES),
            col("Reclaim Policy", "string", PV_SPEC_RECLAIM_POLICY),
            col("Status", "string", PV_STATUS_PHASE),
            col("Claim", "string", PV_SPEC_CLAIM_REF),
            col("StorageClass", "string", "StorageClass of the pv"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
            col("Reason", "string", PV_STATUS_REASON),
            AGE,
            wide("VolumeMode", "string", PV_SPEC_VOLUME_MODE),
        ],
        PersistentVolumeClaim => vec![
            NAME,
            col("Status", "string", PVC_STATUS_PHASE),
            col("Volume", "string", PVC_SPEC_VOLUME_NAME),
            col("Capacity", "string", PVC_STATUS_CAPACITY),
            col("Access Modes", "string", PVC_STATUS_ACCESS_MODES),
            col("StorageClass", "string", "StorageClass of the pvc"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            AGE,
            wide("VolumeMode", "string", PVC_SPEC_VOLUME_MODE),
        ],
        ResourceQuota => vec![
            NAME,
            col(
                "Request",
                "string",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            col(
                "Limit",
                "string",
                "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
            ),
            AGE,
        ],
        Deployment => vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            col("Up-to-date", "string", DEPLOY_STATUS_UPDATED),
            col("Available", "string", DEPLOY_STATUS_AVAILABLE),
            AGE,
            WIDE_CONTAINERS,
            WIDE_IMAGES,
            wide("Selector", "string", DEPLOY_SPEC_SELECTOR),
        ],
        ReplicaSet => vec![
            NAME,
            col("Desired", "integer", RS_SPEC_REPLICAS),
            col("Current", "integer", RS_STATUS_REPLICAS),
            col("Ready", "integer", RS_STATUS_READY_REPLICAS),
            AGE,
            WIDE_CONTAINERS,
            WIDE_IMAGES,
            wide("Selector", "string", RS_SPEC_SELECTOR),
        ],
        StatefulSet => vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            AGE,
            WIDE_CONTAINERS,
            WIDE_IMAGES,
        ],
        DaemonSet => vec![
            NAME,
            col("Desired", "integer", DS_STATUS_DESIRED),
            col("Current", "integer", DS_STATUS_CURRENT),
            col("Ready", "integer", DS_STATUS_READY),
            col("Up-to-date", "integer", DS_STATUS_UPDATED),
            col("Available", "integer", DS_STATUS_AVAILABLE),
            col("Node Selector", "string", POD_SPEC_NODE_SELECTOR),
            AGE,
            WIDE_CONTAINERS,
            WIDE_IMAGES,
            wide("Selector", "string", DS_SPEC_SELECTOR),
        ],
        ControllerRevision => vec![
            NAME,
            col("Controller", "string", "Controller of the object"),
            col("Revision", "string", CONTROLLER_REVISION_REVISION),
            AGE,
        ],
        Job => vec![
            NAME,
            col("Status", "string", "Status of the job."),
            col("Completions", "string", JOB_STATUS_SUCCEEDED),
            col("Duration", "string", "Time required to complete the job."),
            AGE,
            WIDE_CONTAINERS,
            WIDE_IMAGES,
            wide("Selector", "string", JOB_SPEC_SELECTOR),
        ],
        CronJob => vec![
            NAME,
            col("Schedule", "string", CRONJOB_SPEC_SCHEDULE),
            col("Timezone", "string", CRONJOB_SPEC_TIME_ZONE),
            col("Suspend", "boolean", CRONJOB_SPEC_SUSPEND),
            col("Active", "integer", CRONJOB_STATUS_ACTIVE),
            col("Last Schedule", "string", CRONJOB_STATUS_LAST_SCHEDULE),
            AGE,
            WIDE_CONTAINERS,
            WIDE_IMAGES,
            wide("Selector", "string", JOB_SPEC_SELECTOR),
        ],
        EndpointSlice => vec![
            NAME,
            col("AddressType", "string", EPS_ADDRESS_TYPE),
            col("Ports", "string", EPS_PORTS),
            col("Endpoints", "string", EPS_ENDPOINTS),
            AGE,
        ],
        Ingress => vec![
            NAME,
            col(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used for additional configuration",
            ),
            col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
            col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
            col("Ports", "string", "Ports of TLS configurations that open"),
            AGE,
        ],
        IngressClass => vec![
            NAME,
            col("Controller", "string", "Controller that is responsible for handling this class"),
            col("Parameters", "string", "A reference to a resource with additional parameters"),
            AGE,
        ],
        NetworkPolicy => vec![NAME, col("Pod-Selector", "string", NETPOL_SPEC_POD_SELECTOR), AGE],
        RoleBinding => vec![
            NAME,
            col("Role", "string", ROLE_BINDING_ROLE_REF),
            AGE,
            wide("Users", "string", "Users in the roleBinding"),
            wide("Groups", "string", "Groups in the roleBinding"),
            wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
        ],
        ClusterRoleBinding => vec![
            NAME,
            col("Role", "string", CLUSTER_ROLE_BINDING_ROLE_REF),
            AGE,
            wide("Users", "string", "Users in the clusterRoleBinding"),
            wide("Groups", "string", "Groups in the clusterRoleBinding"),
            wide("ServiceAccounts", "string", "ServiceAccounts in the clusterRoleBinding"),
        ],
        Lease => vec![NAME, col("Holder", "string", LEASE_SPEC_HOLDER), AGE],
        PriorityClass => vec![
            NAME,
            col("Value", "integer", PC_VALUE),
            col("Global-Default", "boolean", PC_GLOBAL_DEFAULT),
            AGE,
            // Upstream gives this column priority 0.
            col("PreemptionPolicy", "string", PC_PREEMPTION_POLICY),
        ],
        StorageClass => vec![
            NAME,
            col("Provisioner", "string", SC_PROVISIONER),
            col("ReclaimPolicy", "string", SC_RECLAIM_POLICY),
            col("VolumeBindingMode", "string", SC_VOLUME_BINDING_MODE),
            col("AllowVolumeExpansion", "string", SC_ALLOW_VOLUME_EXPANSION),
            AGE,
        ],
        CsiDriver => vec![
            NAME,
            col("AttachRequired", "boolean", CSI_ATTACH_REQUIRED),
            col("PodInfoOnMount", "boolean", CSI_POD_INFO_ON_MOUNT),
            col("StorageCapacity", "boolean", CSI_STORAGE_CAPACITY),
            col("TokenRequests", "string", CSI_TOKEN_REQUESTS),
            col("RequiresRepublish", "boolean", CSI_REQUIRES_REPUBLISH),
            col("Modes", "string", CSI_MODES),
            AGE,
        ],
        CsiNode => vec![
            NAME,
            col("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node"),
            AGE,
        ],
        VolumeAttachment => vec![
            NAME,
            // Upstream marks this column with format "name" too.
            Column { format: "name", ..col("Attacher", "string", VA_ATTACHER) },
            col("PV", "string", VA_PV),
            col("Node", "string", VA_NODE),
            col("Attached", "boolean", VA_ATTACHED),
            AGE,
        ],
        PodDisruptionBudget => vec![
            NAME,
            col("Min Available", "string", "The minimum number of pods that must be available."),
            col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
            col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
            AGE,
        ],
        HorizontalPodAutoscaler => vec![
            NAME,
            col("Reference", "string", HPA_SPEC_SCALE_TARGET_REF),
            col("Targets", "string", HPA_SPEC_METRICS),
            col("MinPods", "string", HPA_SPEC_MIN_REPLICAS),
            col("MaxPods", "string", HPA_SPEC_MAX_REPLICAS),
            col("Replicas", "string", HPA_STATUS_CURRENT_REPLICAS),
            AGE,
        ],
        // Upstream's description is `ObjectMeta{}.SwaggerDoc()["handler"]`, which is empty.
        RuntimeClass => vec![NAME, col("Handler", "string", ""), AGE],
        MutatingWebhookConfiguration | ValidatingWebhookConfiguration => vec![
            NAME,
            col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
            AGE,
        ],
        CertificateSigningRequest => vec![
            NAME,
            AGE,
            col("SignerName", "string", CSR_SIGNER_NAME),
            col("Requestor", "string", CSR_REQUEST),
            col("RequestedDuration", "string", CSR_EXPIRATION_SECONDS),
            col("Condition", "string", CSR_CONDITIONS),
        ],
        DefaultConvertor => vec![NAME, col("Created At", "date", META_CREATION_TIMESTAMP)],
        Generic => vec![NAME, col("Age", "date", META_CREATION_TIMESTAMP)],
    }
}

/// `columnDefinitions` JSON array for a Table (objects with name, type, format, description, priority).
pub fn column_definitions(cols: &[Column]) -> Value {
    Value::Array(
        cols.iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------------------------

/// One row's cells for an object (the full JSON object as stored), in the order of `columns`.
pub fn cells(group: &str, resource: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    use Printer::*;
    let p = Row { obj, now };
    match printer(group, resource) {
        Pod => p.pod(),
        PodTemplate => p.pod_template(),
        ReplicationController => p.replication_controller(),
        Service => p.service(),
        Endpoints => p.endpoints(),
        ConfigMap => p.config_map(),
        Secret => p.secret(),
        Namespace => vec![p.name(), s(obj, &["status", "phase"]).into(), p.age()],
        Node => p.node(),
        Event => p.event(group == "events.k8s.io"),
        ServiceAccount => vec![p.name(), json!(list(obj, &["secrets"]).len()), p.age()],
        PersistentVolume => p.persistent_volume(),
        PersistentVolumeClaim => p.persistent_volume_claim(),
        ResourceQuota => p.resource_quota(),
        Deployment => p.deployment(),
        ReplicaSet => p.replica_set(),
        StatefulSet => p.stateful_set(),
        DaemonSet => p.daemon_set(),
        ControllerRevision => p.controller_revision(),
        Job => p.job(),
        CronJob => p.cron_job(),
        EndpointSlice => p.endpoint_slice(),
        Ingress => p.ingress(),
        IngressClass => p.ingress_class(),
        NetworkPolicy => vec![
            p.name(),
            format_label_selector(Some(at(obj, &["spec", "podSelector"]).unwrap_or(&Value::Null))).into(),
            p.age(),
        ],
        RoleBinding | ClusterRoleBinding => p.role_binding(),
        Lease => vec![p.name(), s(obj, &["spec", "holderIdentity"]).into(), p.age()],
        PriorityClass => vec![
            p.name(),
            json!(int(obj, &["value"])),
            Value::Bool(boolean(obj, &["globalDefault"]).unwrap_or(false)),
            p.age(),
            s(obj, &["preemptionPolicy"]).into(),
        ],
        StorageClass => p.storage_class(),
        CsiDriver => p.csi_driver(),
        CsiNode => vec![p.name(), json!(list(obj, &["spec", "drivers"]).len()), p.age()],
        VolumeAttachment => vec![
            p.name(),
            s(obj, &["spec", "attacher"]).into(),
            s(obj, &["spec", "source", "persistentVolumeName"]).into(),
            s(obj, &["spec", "nodeName"]).into(),
            Value::Bool(boolean(obj, &["status", "attached"]).unwrap_or(false)),
            p.age(),
        ],
        PodDisruptionBudget => p.pod_disruption_budget(),
        HorizontalPodAutoscaler => p.horizontal_pod_autoscaler(),
        RuntimeClass => vec![p.name(), s(obj, &["handler"]).into(), p.age()],
        MutatingWebhookConfiguration | ValidatingWebhookConfiguration => {
            vec![p.name(), json!(list(obj, &["webhooks"]).len()), p.age()]
        }
        CertificateSigningRequest => p.certificate_signing_request(),
        DefaultConvertor => {
            let created = time(obj, &["metadata", "creationTimestamp"]).map_or_else(
                || "0001-01-01T00:00:00Z".to_string(),
                |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            );
            vec![p.name(), created.into()]
        }
        Generic => vec![p.name(), p.age()],
    }
}

/// The object being printed and the time to measure ages against.
struct Row<'a> {
    obj: &'a Value,
    now: DateTime<Utc>,
}

impl Row<'_> {
    fn name(&self) -> Value {
        s(self.obj, &["metadata", "name"]).into()
    }

    fn age(&self) -> Value {
        self.since(time(self.obj, &["metadata", "creationTimestamp"])).into()
    }

    /// Upstream's `translateTimestampSince`.
    fn since(&self, t: Option<DateTime<Utc>>) -> String {
        match t {
            None => "<unknown>".to_string(),
            Some(t) => human_duration(self.now - t),
        }
    }

    fn deleting(&self) -> bool {
        at(self.obj, &["metadata", "deletionTimestamp"]).is_some()
    }

    fn pod(&self) -> Vec<Value> {
        let pod = self.obj;
        let status = at(pod, &["status"]).unwrap_or(&Value::Null);
        let phase = s(status, &["phase"]);
        let mut reason =
            if s(status, &["reason"]).is_empty() { phase.to_string() } else { s(status, &["reason"]).to_string() };

        for cond in list(status, &["conditions"]) {
            if s(cond, &["type"]) == "PodScheduled" && s(cond, &["reason"]) == "SchedulingGated" {
                reason = "SchedulingGated".to_string();
            }
        }

        let init_specs = list(pod, &["spec", "initContainers"]);
        let restartable = |name: &str| {
            init_specs.iter().find(|c| s(c, &["name"]) == name).is_some_and(|c| s(c, &["restartPolicy"]) == "Always")
        };
        let mut total = list(pod, &["spec", "containers"]).len();
        total += init_specs.iter().filter(|c| s(c, &["restartPolicy"]) == "Always").count();

        let mut ready = 0usize;
        let mut restarts = 0i64;
        let mut restartable_restarts = 0i64;
        let mut last_restart: Option<DateTime<Utc>> = None;
        let mut last_restartable_restart: Option<DateTime<Utc>> = None;

        let mut initializing = false;
        for (i, cs) in list(status, &["initContainerStatuses"]).iter().enumerate() {
            let count = int(cs, &["restartCount"]);
            restarts += count;
            let finished = time(cs, &["lastState", "terminated", "finishedAt"]);
            if at(cs, &["lastState", "terminated"]).is_some() {
                bump(&mut last_restart, finished);
            }
            let is_restartable = restartable(s(cs, &["name"]));
            if is_restartable {
                restartable_restarts += count;
                if at(cs, &["lastState", "terminated"]).is_some() {
                    bump(&mut last_restartable_restart, finished);
                }
            }
            let terminated = at(cs, &["state", "terminated"]);
            let waiting = at(cs, &["state", "waiting"]);
            if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
                continue;
            }
            if is_restartable && boolean(cs, &["started"]) == Some(true) {
                if boolean(cs, &["ready"]) == Some(true) {
                    ready += 1;
                }
                continue;
            }
            if let Some(t) = terminated {
                reason = if s(t, &["reason"]).is_empty() {
                    if int(t, &["signal"]) != 0 {
                        format!("Init:Signal:{}", int(t, &["signal"]))
                    } else {
                        format!("Init:ExitCode:{}", int(t, &["exitCode"]))
                    }
                } else {
                    format!("Init:{}", s(t, &["reason"]))
                };
            } else if let Some(w) =
                waiting.filter(|w| !s(w, &["reason"]).is_empty() && s(w, &["reason"]) != "PodInitializing")
            {
                reason = format!("Init:{}", s(w, &["reason"]));
            } else {
                reason = format!("Init:{}/{}", i, init_specs.len());
            }
            initializing = true;
            break;
        }

        if !initializing || condition_true(status, "Initialized") {
            restarts = restartable_restarts;
            last_restart = last_restartable_restart;
            let mut has_running = false;
            for cs in list(status, &["containerStatuses"]).iter().rev() {
                restarts += int(cs, &["restartCount"]);
                if at(cs, &["lastState", "terminated"]).is_some() {
                    bump(&mut last_restart, time(cs, &["lastState", "terminated", "finishedAt"]));
                }
                let waiting = at(cs, &["state", "waiting"]);
                let terminated = at(cs, &["state", "terminated"]);
                if let Some(w) = waiting.filter(|w| !s(w, &["reason"]).is_empty()) {
                    reason = s(w, &["reason"]).to_string();
                } else if let Some(t) = terminated {
                    reason = if !s(t, &["reason"]).is_empty() {
                        s(t, &["reason"]).to_string()
                    } else if int(t, &["signal"]) != 0 {
                        format!("Signal:{}", int(t, &["signal"]))
                    } else {
                        format!("ExitCode:{}", int(t, &["exitCode"]))
                    };
                } else if boolean(cs, &["ready"]) == Some(true) && at(cs, &["state", "running"]).is_some() {
                    has_running = true;
                    ready += 1;
                }
            }

            // A pod whose containers completed but one still runs is shown as running.
            if reason == "Completed" && has_running {
                reason = if condition_true(status, "Ready") { "Running" } else { "NotReady" }.to_string();
            }
        }

        if self.deleting() && s(status, &["reason"]) == "NodeLost" {
            reason = "Unknown".to_string();
        } else if self.deleting() && phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".to_string();
        }

        let restarts_str = match last_restart {
            Some(t) if restarts != 0 => format!("{restarts} ({} ago)", self.since(Some(t))),
            _ => restarts.to_string(),
        };

        let pod_ip = list(status, &["podIPs"])
            .first()
            .map(|ip| s(ip, &["ip"]))
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| s(status, &["podIP"]));

        let gates = list(pod, &["spec", "readinessGates"]);
        let readiness_gates = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let conditions = list(status, &["conditions"]);
            let ok = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .find(|c| s(c, &["type"]) == s(g, &["conditionType"]))
                        .is_some_and(|c| s(c, &["status"]) == "True")
                })
                .count();
            format!("{ok}/{}", gates.len())
        };

        vec![
            self.name(),
            format!("{ready}/{total}").into(),
            reason.into(),
            restarts_str.into(),
            self.age(),
            or_none(pod_ip).into(),
            or_none(s(pod, &["spec", "nodeName"])).into(),
            or_none(s(status, &["nominatedNodeName"])).into(),
            readiness_gates.into(),
        ]
    }

    fn pod_template(&self) -> Vec<Value> {
        let (names, images) = layout_containers(list(self.obj, &["template", "spec", "containers"]));
        vec![
            self.name(),
            names.into(),
            images.into(),
            format_labels(at(self.obj, &["template", "metadata", "labels"])).into(),
        ]
    }

    fn replication_controller(&self) -> Vec<Value> {
        let o = self.obj;
        let (names, images) = layout_containers(list(o, &["spec", "template", "spec", "containers"]));
        vec![
            self.name(),
            json!(int_or(o, &["spec", "replicas"], 1)),
            json!(int(o, &["status", "replicas"])),
            json!(int(o, &["status", "readyReplicas"])),
            self.age(),
            names.into(),
            images.into(),
            format_labels(at(o, &["spec", "selector"])).into(),
        ]
    }

    fn service(&self) -> Vec<Value> {
        let o = self.obj;
        let spec = at(o, &["spec"]).unwrap_or(&Value::Null);
        let svc_type = match s(spec, &["type"]) {
            "" => "ClusterIP",
            t => t,
        };
        let cluster_ip = list(spec, &["clusterIPs"])
            .first()
            .and_then(Value::as_str)
            .or_else(|| at(spec, &["clusterIP"]).and_then(Value::as_str))
            .unwrap_or("<none>");
        let external_ips: Vec<&str> = strings(spec, &["externalIPs"]);
        let external = match svc_type {
            "ClusterIP" | "NodePort" => {
                if external_ips.is_empty() {
                    "<none>".to_string()
                } else {
                    external_ips.join(",")
                }
            }
            "LoadBalancer" => {
                let lb = load_balancer_ingress(list(o, &["status", "loadBalancer", "ingress"]));
                if !external_ips.is_empty() {
                    let mut all: Vec<&str> = lb.iter().map(String::as_str).collect();
                    all.extend(external_ips.iter().copied());
                    all.join(",")
                } else if !lb.is_empty() {
                    lb.join(",")
                } else {
                    "<pending>".to_string()
                }
            }
            "ExternalName" => s(spec, &["externalName"]).to_string(),
            _ => "<unknown>".to_string(),
        };
        let ports: Vec<String> = list(spec, &["ports"])
            .iter()
            .map(|p| {
                let protocol = match s(p, &["protocol"]) {
                    "" => "TCP",
                    proto => proto,
                };
                let node_port = int(p, &["nodePort"]);
                if node_port > 0 {
                    format!("{}:{}/{}", int(p, &["port"]), node_port, protocol)
                } else {
                    format!("{}/{}", int(p, &["port"]), protocol)
                }
            })
            .collect();
        let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
        vec![
            self.name(),
            svc_type.into(),
            cluster_ip.into(),
            external.into(),
            ports.into(),
            self.age(),
            format_labels(at(spec, &["selector"])).into(),
        ]
    }

    fn endpoints(&self) -> Vec<Value> {
        vec![self.name(), format_endpoints(list(self.obj, &["subsets"])).into(), self.age()]
    }

    fn config_map(&self) -> Vec<Value> {
        let n = map_len(self.obj, &["data"]) + map_len(self.obj, &["binaryData"]);
        vec![self.name(), json!(n), self.age()]
    }

    fn secret(&self) -> Vec<Value> {
        // `stringData` is merged into `data` on write; count the union in case it was not.
        let mut keys: Vec<&str> = Vec::new();
        for field in ["data", "stringData"] {
            if let Some(m) = at(self.obj, &[field]).and_then(Value::as_object) {
                keys.extend(m.keys().map(String::as_str));
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let secret_type = match s(self.obj, &["type"]) {
            "" => "Opaque",
            t => t,
        };
        vec![self.name(), secret_type.into(), json!(keys.len()), self.age()]
    }

    fn node(&self) -> Vec<Value> {
        let o = self.obj;
        let mut status: Vec<String> = Vec::new();
        // The last condition of type Ready wins, like upstream's map.
        if let Some(c) = list(o, &["status", "conditions"]).iter().rev().find(|c| s(c, &["type"]) == "Ready") {
            status.push(if s(c, &["status"]) == "True" { "Ready" } else { "NotReady" }.to_string());
        }
        if status.is_empty() {
            status.push("Unknown".to_string());
        }
        if boolean(o, &["spec", "unschedulable"]) == Some(true) {
            status.push("SchedulingDisabled".to_string());
        }

        let mut roles: Vec<&str> = Vec::new();
        if let Some(labels) = at(o, &["metadata", "labels"]).and_then(Value::as_object) {
            for (k, v) in labels {
                if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                    if !role.is_empty() {
                        roles.push(role);
                    }
                } else if k == "kubernetes.io/role" {
                    if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                        roles.push(v);
                    }
                }
            }
        }
        roles.sort_unstable();
        roles.dedup();
        let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };

        let address = |kind: &str| {
            list(o, &["status", "addresses"])
                .iter()
                .find(|a| s(a, &["type"]) == kind)
                .map_or("<none>", |a| s(a, &["address"]))
        };
        let info = |field: &str| match s(o, &["status", "nodeInfo", field]) {
            "" => "<unknown>",
            v => v,
        };
        vec![
            self.name(),
            status.join(",").into(),
            roles.into(),
            self.age(),
            s(o, &["status", "nodeInfo", "kubeletVersion"]).into(),
            address("InternalIP").into(),
            address("ExternalIP").into(),
            info("osImage").into(),
            info("kernelVersion").into(),
            info("containerRuntimeVersion").into(),
        ]
    }

    /// Core v1 events and events.k8s.io/v1 events (read through the latter's field names).
    fn event(&self, events_api: bool) -> Vec<Value> {
        let o = self.obj;
        let f = |core: &'static str, new: &'static str| if events_api { new } else { core };
        let involved = at(o, &[f("involvedObject", "regarding")]).unwrap_or(&Value::Null);
        let source = at(o, &[f("source", "deprecatedSource")]).unwrap_or(&Value::Null);

        let first = match time(o, &[f("firstTimestamp", "deprecatedFirstTimestamp")]) {
            Some(t) => self.since(Some(t)),
            None => self.since(time(o, &["eventTime"])),
        };
        let mut last = match time(o, &[f("lastTimestamp", "deprecatedLastTimestamp")]) {
            Some(t) => self.since(Some(t)),
            None => first.clone(),
        };
        let mut count = int(o, &[f("count", "deprecatedCount")]);
        if let Some(series) = at(o, &["series"]) {
            last = self.since(time(series, &["lastObservedTime"]));
            count = int(series, &["count"]);
        } else if count == 0 {
            // Singleton events don't have a count set in the new API.
            count = 1;
        }

        let kind = s(involved, &["kind"]).to_lowercase();
        let target = match s(involved, &["name"]) {
            "" => kind,
            name => format!("{kind}/{name}"),
        };
        let component =
            first_non_empty(s(source, &["component"]), s(o, &[f("reportingComponent", "reportingController")]));
        let instance = first_non_empty(s(source, &["host"]), s(o, &["reportingInstance"]));
        let source = if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") };

        vec![
            last.into(),
            s(o, &["type"]).into(),
            s(o, &["reason"]).into(),
            target.into(),
            s(involved, &["fieldPath"]).into(),
            source.into(),
            s(o, &[f("message", "note")]).trim().into(),
            first.into(),
            json!(count),
            self.name(),
        ]
    }

    fn persistent_volume(&self) -> Vec<Value> {
        let o = self.obj;
        let spec = at(o, &["spec"]).unwrap_or(&Value::Null);
        let claim = match at(spec, &["claimRef"]) {
            Some(c) => format!("{}/{}", s(c, &["namespace"]), s(c, &["name"])),
            None => String::new(),
        };
        let phase = if self.deleting() { "Terminating" } else { s(o, &["status", "phase"]) };
        let class = annotation(o, "volume.beta.kubernetes.io/storage-class").unwrap_or(s(spec, &["storageClassName"]));
        vec![
            self.name(),
            quantity(at(spec, &["capacity", "storage"])).into(),
            access_modes(spec).into(),
            s(spec, &["persistentVolumeReclaimPolicy"]).into(),
            phase.into(),
            claim.into(),
            class.into(),
            or_unset(at(spec, &["volumeAttributesClassName"]).and_then(Value::as_str)).into(),
            s(o, &["status", "reason"]).into(),
            self.age(),
            or_unset(at(spec, &["volumeMode"]).and_then(Value::as_str)).into(),
        ]
    }

    fn persistent_volume_claim(&self) -> Vec<Value> {
        let o = self.obj;
        let spec = at(o, &["spec"]).unwrap_or(&Value::Null);
        let phase = if self.deleting() { "Terminating" } else { s(o, &["status", "phase"]) };
        let volume = s(spec, &["volumeName"]);
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            let status = at(o, &["status"]).unwrap_or(&Value::Null);
            (quantity(at(status, &["capacity", "storage"])), access_modes(status))
        };
        let class = annotation(o, "volume.beta.kubernetes.io/storage-class")
            .or_else(|| at(spec, &["storageClassName"]).and_then(Value::as_str))
            .unwrap_or("");
        vec![
            self.name(),
            phase.into(),
            volume.into(),
            capacity.into(),
            modes.into(),
            class.into(),
            or_unset(at(spec, &["volumeAttributesClassName"]).and_then(Value::as_str)).into(),
            self.age(),
            or_unset(at(spec, &["volumeMode"]).and_then(Value::as_str)).into(),
        ]
    }

    fn resource_quota(&self) -> Vec<Value> {
        let o = self.obj;
        let mut requests = Vec::new();
        let mut limits = Vec::new();
        if let Some(hard) = at(o, &["status", "hard"]).and_then(Value::as_object) {
            let mut names: Vec<&String> = hard.keys().collect();
            names.sort();
            for name in names {
                let used = quantity(at(o, &["status", "used", name]));
                let entry = format!("{name}: {used}/{}", quantity(hard.get(name.as_str())));
                if name.split('.').count() > 1 && name.split('.').next() == Some("limits") {
                    limits.push(entry);
                } else {
                    requests.push(entry);
                }
            }
        }
        vec![self.name(), requests.join(", ").into(), limits.join(", ").into(), self.age()]
    }

    fn deployment(&self) -> Vec<Value> {
        let o = self.obj;
        let (names, images) = layout_containers(list(o, &["spec", "template", "spec", "containers"]));
        let selector = selector_string(at(o, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".to_string());
        vec![
            self.name(),
            format!("{}/{}", int(o, &["status", "readyReplicas"]), int_or(o, &["spec", "replicas"], 1)).into(),
            json!(int(o, &["status", "updatedReplicas"])),
            json!(int(o, &["status", "availableReplicas"])),
            self.age(),
            names.into(),
            images.into(),
            selector.into(),
        ]
    }

    fn replica_set(&self) -> Vec<Value> {
        let o = self.obj;
        let (names, images) = layout_containers(list(o, &["spec", "template", "spec", "containers"]));
        vec![
            self.name(),
            json!(int_or(o, &["spec", "replicas"], 1)),
            json!(int(o, &["status", "replicas"])),
            json!(int(o, &["status", "readyReplicas"])),
            self.age(),
            names.into(),
            images.into(),
            format_label_selector(at(o, &["spec", "selector"])).into(),
        ]
    }

    fn stateful_set(&self) -> Vec<Value> {
        let o = self.obj;
        let (names, images) = layout_containers(list(o, &["spec", "template", "spec", "containers"]));
        vec![
            self.name(),
            format!("{}/{}", int(o, &["status", "readyReplicas"]), int_or(o, &["spec", "replicas"], 1)).into(),
            self.age(),
            names.into(),
            images.into(),
        ]
    }

    fn daemon_set(&self) -> Vec<Value> {
        let o = self.obj;
        let (names, images) = layout_containers(list(o, &["spec", "template", "spec", "containers"]));
        vec![
            self.name(),
            json!(int(o, &["status", "desiredNumberScheduled"])),
            json!(int(o, &["status", "currentNumberScheduled"])),
            json!(int(o, &["status", "numberReady"])),
            json!(int(o, &["status", "updatedNumberScheduled"])),
            json!(int(o, &["status", "numberAvailable"])),
            format_labels(at(o, &["spec", "template", "spec", "nodeSelector"])).into(),
            self.age(),
            names.into(),
            images.into(),
            format_label_selector(at(o, &["spec", "selector"])).into(),
        ]
    }

    fn controller_revision(&self) -> Vec<Value> {
        let o = self.obj;
        let controller = list(o, &["metadata", "ownerReferences"])
            .iter()
            .find(|r| boolean(r, &["controller"]) == Some(true))
            .map_or_else(
                || "<none>".to_string(),
                |r| {
                    // The group of apiVersion "apps/v1" is "apps"; of "v1" it is "".
                    let group = s(r, &["apiVersion"]).rsplit_once('/').map_or("", |(g, _)| g);
                    let kind = s(r, &["kind"]);
                    let name = s(r, &["name"]);
                    match (group, kind) {
                        ("", "") => name.to_string(),
                        ("", kind) => format!("{}/{name}", kind.to_lowercase()),
                        (group, kind) => {
                            format!("{}.{}/{name}", kind.to_lowercase(), group.to_lowercase())
                        }
                    }
                },
            );
        vec![self.name(), controller.into(), json!(int(o, &["revision"])), self.age()]
    }

    fn job(&self) -> Vec<Value> {
        let o = self.obj;
        let succeeded = int(o, &["status", "succeeded"]);
        let completions_set = at(o, &["spec", "completions"]);
        let parallelism_set = at(o, &["spec", "parallelism"]);
        let completions = match (completions_set, parallelism_set) {
            // batch/v1 defaulting: both unset means both are 1.
            (None, None) => format!("{succeeded}/1"),
            (Some(c), _) => format!("{succeeded}/{}", c.as_i64().unwrap_or(0)),
            (None, Some(p)) => match p.as_i64().unwrap_or(0) {
                n if n > 1 => format!("{succeeded}/1 of {n}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let duration = match (time(o, &["status", "startTime"]), time(o, &["status", "completionTime"])) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration(self.now - start),
            (Some(start), Some(end)) => human_duration(end - start),
        };
        let conditions = list(o, &["status", "conditions"]);
        let status = if job_condition(conditions, "Complete") {
            "Complete"
        } else if job_condition(conditions, "Failed") {
            "Failed"
        } else if self.deleting() {
            "Terminating"
        } else if job_condition(conditions, "Suspended") {
            "Suspended"
        } else if job_condition(conditions, "FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let (names, images) = layout_containers(list(o, &["spec", "template", "spec", "containers"]));
        vec![
            self.name(),
            status.into(),
            completions.into(),
            duration.into(),
            self.age(),
            names.into(),
            images.into(),
            format_label_selector(at(o, &["spec", "selector"])).into(),
        ]
    }

    fn cron_job(&self) -> Vec<Value> {
        let o = self.obj;
        let last_schedule = match at(o, &["status", "lastScheduleTime"]) {
            Some(_) => self.since(time(o, &["status", "lastScheduleTime"])),
            None => "<none>".to_string(),
        };
        let suspend = match boolean(o, &["spec", "suspend"]) {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let template = at(o, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
        let (names, images) = layout_containers(list(template, &["template", "spec", "containers"]));
        vec![
            self.name(),
            s(o, &["spec", "schedule"]).into(),
            at(o, &["spec", "timeZone"]).and_then(Value::as_str).unwrap_or("<none>").into(),
            suspend.into(),
            json!(list(o, &["status", "active"]).len()),
            last_schedule.into(),
            self.age(),
            names.into(),
            images.into(),
            format_label_selector(at(template, &["selector"])).into(),
        ]
    }

    fn endpoint_slice(&self) -> Vec<Value> {
        let o = self.obj;
        let ports = list(o, &["ports"]).iter().map(|p| {
            if let Some(port) = at(p, &["port"]) {
                port.as_i64().unwrap_or(0).to_string()
            } else if let Some(name) = at(p, &["name"]).and_then(Value::as_str) {
                name.to_string()
            } else {
                "*".to_string()
            }
        });
        let addresses = list(o, &["endpoints"]).iter().flat_map(|e| strings(e, &["addresses"])).map(str::to_string);
        vec![
            self.name(),
            s(o, &["addressType"]).into(),
            list_with_more(ports).into(),
            list_with_more(addresses).into(),
            self.age(),
        ]
    }

    fn ingress(&self) -> Vec<Value> {
        let o = self.obj;
        let rules = list(o, &["spec", "rules"]);
        let mut hosts: Vec<&str> = Vec::new();
        let mut more = false;
        for rule in rules {
            if hosts.len() == 3 {
                more = true;
            }
            if !more && !s(rule, &["host"]).is_empty() {
                hosts.push(s(rule, &["host"]));
            }
        }
        let hosts = if hosts.is_empty() {
            "*".to_string()
        } else if more {
            format!("{} + {} more...", hosts.join(","), rules.len() - 3)
        } else {
            hosts.join(",")
        };
        let ports = if list(o, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
        vec![
            self.name(),
            at(o, &["spec", "ingressClassName"]).and_then(Value::as_str).unwrap_or("<none>").into(),
            hosts.into(),
            load_balancer_ingress(list(o, &["status", "loadBalancer", "ingress"])).join(",").into(),
            ports.into(),
            self.age(),
        ]
    }

    fn ingress_class(&self) -> Vec<Value> {
        let o = self.obj;
        let parameters = match at(o, &["spec", "parameters"]) {
            None => "<none>".to_string(),
            Some(p) => {
                let mut out = s(p, &["kind"]).to_string();
                if let Some(group) = at(p, &["apiGroup"]).and_then(Value::as_str) {
                    out = format!("{out}.{group}");
                }
                format!("{out}/{}", s(p, &["name"]))
            }
        };
        vec![self.name(), s(o, &["spec", "controller"]).into(), parameters.into(), self.age()]
    }

    fn role_binding(&self) -> Vec<Value> {
        let o = self.obj;
        let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
        for subject in list(o, &["subjects"]) {
            let name = s(subject, &["name"]);
            match s(subject, &["kind"]) {
                "ServiceAccount" => sas.push(format!("{}/{name}", s(subject, &["namespace"]))),
                "User" => users.push(name.to_string()),
                "Group" => groups.push(name.to_string()),
                _ => {}
            }
        }
        vec![
            self.name(),
            format!("{}/{}", s(o, &["roleRef", "kind"]), s(o, &["roleRef", "name"])).into(),
            self.age(),
            users.join(", ").into(),
            groups.join(", ").into(),
            sas.join(", ").into(),
        ]
    }

    fn storage_class(&self) -> Vec<Value> {
        let o = self.obj;
        let is_default = annotation(o, "storageclass.kubernetes.io/is-default-class") == Some("true")
            || annotation(o, "storageclass.beta.kubernetes.io/is-default-class") == Some("true");
        let mut name = s(o, &["metadata", "name"]).to_string();
        if is_default {
            name.push_str(" (default)");
        }
        vec![
            name.into(),
            s(o, &["provisioner"]).into(),
            at(o, &["reclaimPolicy"]).and_then(Value::as_str).unwrap_or("Delete").into(),
            at(o, &["volumeBindingMode"]).and_then(Value::as_str).unwrap_or("Immediate").into(),
            Value::Bool(boolean(o, &["allowVolumeExpansion"]).unwrap_or(false)),
            self.age(),
        ]
    }

    fn csi_driver(&self) -> Vec<Value> {
        let o = self.obj;
        let spec = at(o, &["spec"]).unwrap_or(&Value::Null);
        let modes = strings(spec, &["volumeLifecycleModes"]).join(",");
        let token_requests = match at(spec, &["tokenRequests"]) {
            None => "<unset>".to_string(),
            Some(_) => list(spec, &["tokenRequests"]).iter().map(|t| s(t, &["audience"])).collect::<Vec<_>>().join(","),
        };
        vec![
            self.name(),
            Value::Bool(boolean(spec, &["attachRequired"]).unwrap_or(true)),
            Value::Bool(boolean(spec, &["podInfoOnMount"]).unwrap_or(false)),
            Value::Bool(boolean(spec, &["storageCapacity"]).unwrap_or(false)),
            token_requests.into(),
            Value::Bool(boolean(spec, &["requiresRepublish"]).unwrap_or(false)),
            or_none(&modes).into(),
            self.age(),
        ]
    }

    fn pod_disruption_budget(&self) -> Vec<Value> {
        let o = self.obj;
        let int_or_string = |field: &str| match at(o, &["spec", field]) {
            None => "N/A".to_string(),
            Some(Value::String(v)) => v.clone(),
            Some(v) => v.as_i64().unwrap_or(0).to_string(),
        };
        vec![
            self.name(),
            int_or_string("minAvailable").into(),
            int_or_string("maxUnavailable").into(),
            json!(int(o, &["status", "disruptionsAllowed"])),
            self.age(),
        ]
    }

    fn horizontal_pod_autoscaler(&self) -> Vec<Value> {
        let o = self.obj;
        let spec = at(o, &["spec"]).unwrap_or(&Value::Null);
        let reference = format!("{}/{}", s(spec, &["scaleTargetRef", "kind"]), s(spec, &["scaleTargetRef", "name"]));
        let (specs, statuses) = hpa_metrics(o);
        let min_pods = match at(spec, &["minReplicas"]) {
            Some(v) => v.as_i64().unwrap_or(0).to_string(),
            None => "<unset>".to_string(),
        };
        vec![
            self.name(),
            reference.into(),
            format_hpa_metrics(&specs, &statuses).into(),
            min_pods.into(),
            json!(int(spec, &["maxReplicas"])),
            json!(int(o, &["status", "currentReplicas"])),
            self.age(),
        ]
    }

    fn certificate_signing_request(&self) -> Vec<Value> {
        let o = self.obj;
        let (mut approved, mut denied, mut failed) = (false, false, false);
        for c in list(o, &["status", "conditions"]) {
            match s(c, &["type"]) {
                "Approved" => approved = true,
                "Denied" => denied = true,
                "Failed" => failed = true,
                _ => {}
            }
        }
        let mut status = if denied {
            "Denied"
        } else if approved {
            "Approved"
        } else {
            "Pending"
        }
        .to_string();
        if failed {
            status.push_str(",Failed");
        }
        if !s(o, &["status", "certificate"]).is_empty() {
            status.push_str(",Issued");
        }
        let requested = match at(o, &["spec", "expirationSeconds"]).and_then(Value::as_i64) {
            Some(secs) => human_duration(Duration::seconds(secs)),
            None => "<none>".to_string(),
        };
        vec![
            self.name(),
            self.age(),
            or_none(s(o, &["spec", "signerName"])).into(),
            s(o, &["spec", "username"]).into(),
            requested.into(),
            status.into(),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting helpers (upstream's printers.go helpers)
// ---------------------------------------------------------------------------------------------

/// `layoutContainerCells`: container names and images, each joined with ",".
fn layout_containers(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `labels.FormatLabels`: sorted `k=v` pairs joined with ",", or `<none>`.
fn format_labels(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    }
}

/// `metav1.FormatLabelSelector`.
fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Err(()) => "<error>".to_string(),
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
    }
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key, `k=v`,
/// `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. A missing selector selects nothing and an empty one
/// everything; both print as "". Invalid selectors are an error.
fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let empty = Map::new();
    let match_labels = selector.get("matchLabels").and_then(Value::as_object).unwrap_or(&empty);
    let match_expressions = list(selector, &["matchExpressions"]);
    let mut requirements: Vec<(&str, String)> = Vec::new();
    for (key, value) in match_labels {
        let value = value.as_str().unwrap_or_default();
        if !valid_label_key(key) || !valid_label_value(value) {
            return Err(());
        }
        requirements.push((key, format!("{key}={value}")));
    }
    for expr in match_expressions {
        let key = s(expr, &["key"]);
        let mut values = strings(expr, &["values"]);
        if !valid_label_key(key) || !values.iter().all(|v| valid_label_value(v)) {
            return Err(());
        }
        values.sort_unstable();
        let rendered = match s(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key, rendered));
    }
    requirements.sort_by(|a, b| a.0.cmp(b.0));
    Ok(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// A label key: `[prefix/]name`, prefix a DNS-1123 subdomain, name a qualified name part.
fn valid_label_key(key: &str) -> bool {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => valid_name_part(name),
        (Some(prefix), Some(name), None) => valid_dns_subdomain(prefix) && valid_name_part(name),
        _ => false,
    }
}

fn valid_label_value(value: &str) -> bool {
    value.is_empty() || valid_name_part(value)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn valid_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Load-balancer ingress points (IP, else hostname), sorted and de-duplicated.
fn load_balancer_ingress(ingress: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = ingress
        .iter()
        .filter_map(|i| {
            let ip = s(i, &["ip"]);
            let host = s(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `formatEndpoints(endpoints, nil)`: up to three `ip:port` (or bare IPs for port-less subsets).
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(s(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(join_host_port(s(address, &["ip"]), int(port, &["port"])));
            }
        }
    }
    let joined = shown.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's `listWithMoreString` over at most three items: `a,b,c + N more...`, or `<unset>`.
fn list_with_more(items: impl Iterator<Item = String>) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut count = 0usize;
    for item in items {
        if list.len() < MAX {
            list.push(item);
        }
        count += 1;
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

/// `helper.GetAccessModesAsString`.
fn access_modes(v: &Value) -> String {
    let modes = strings(v, &["accessModes"]);
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| modes.contains(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// A stored quantity as printed by `Quantity.String()`; a missing quantity is zero ("0").
/// Quantities are printed as stored: the store is expected to keep them in canonical form.
fn quantity(v: Option<&Value>) -> String {
    match v {
        None => "0".to_string(),
        Some(Value::String(q)) => q.clone(),
        Some(other) => other.to_string(),
    }
}

/// `(*Quantity).String()` for an optional quantity: `<nil>` when absent.
fn quantity_ptr(v: Option<&Value>) -> String {
    match v {
        None => "<nil>".to_string(),
        some => quantity(some),
    }
}

/// HPA metric specs and statuses in the autoscaling/v2 shape; an autoscaling/v1 object's
/// CPU target and current utilization are converted like upstream's v1 conversion does.
fn hpa_metrics(o: &Value) -> (Vec<Value>, Vec<Value>) {
    if at(o, &["spec", "metrics"]).is_some() || at(o, &["spec", "targetCPUUtilizationPercentage"]).is_none() {
        return (list(o, &["spec", "metrics"]).to_vec(), list(o, &["status", "currentMetrics"]).to_vec());
    }
    let target = int(o, &["spec", "targetCPUUtilizationPercentage"]);
    let specs = vec![json!({
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}},
    })];
    let statuses = match at(o, &["status", "currentCPUUtilizationPercentage"]) {
        Some(current) => vec![json!({
            "type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": current}},
        })],
        None => Vec::new(),
    };
    (specs, statuses)
}

/// `formatHPAMetrics`: at most two metrics as `current/target`, then `+ N more...`.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 2;
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = |source: &str| statuses.get(i).and_then(|st| at(st, &[source]));
        let entry = match s(spec, &["type"]) {
            kind @ ("External" | "Object") => {
                let source = if kind == "External" { "external" } else { "object" };
                let target = at(spec, &[source, "target"]).unwrap_or(&Value::Null);
                if let Some(avg) = at(target, &["averageValue"]) {
                    let current = status(source)
                        .and_then(|st| at(st, &["current", "averageValue"]))
                        .map_or_else(|| "<unknown>".to_string(), |q| quantity(Some(q)));
                    format!("{current}/{} (avg)", quantity(Some(avg)))
                } else {
                    let current = status(source)
                        .map_or_else(|| "<unknown>".to_string(), |st| quantity_ptr(at(st, &["current", "value"])));
                    format!("{current}/{}", quantity_ptr(at(target, &["value"])))
                }
            }
            "Pods" => {
                let current = status("pods")
                    .map_or_else(|| "<unknown>".to_string(), |st| quantity_ptr(at(st, &["current", "averageValue"])));
                format!("{current}/{}", quantity_ptr(at(spec, &["pods", "target", "averageValue"])))
            }
            kind @ ("Resource" | "ContainerResource") => {
                let source = if kind == "Resource" { "resource" } else { "containerResource" };
                let name = s(spec, &[source, "name"]);
                let target = at(spec, &[source, "target"]).unwrap_or(&Value::Null);
                if let Some(avg) = at(target, &["averageValue"]) {
                    let current = status(source).map_or_else(
                        || "<unknown>".to_string(),
                        |st| quantity_ptr(at(st, &["current", "averageValue"])),
                    );
                    format!("{name}: {current}/{}", quantity(Some(avg)))
                } else {
                    let current = status(source)
                        .and_then(|st| at(st, &["current", "averageUtilization"]))
                        .map_or_else(|| "<unknown>".to_string(), |u| format!("{}%", u.as_i64().unwrap_or(0)));
                    let target = at(target, &["averageUtilization"])
                        .map_or_else(|| "<auto>".to_string(), |u| format!("{}%", u.as_i64().unwrap_or(0)));
                    format!("{name}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(entry);
    }
    let count = list.len();
    if count > MAX {
        list.truncate(MAX);
        format!("{} + {} more...", list.join(", "), count - MAX)
    } else {
        list.join(", ")
    }
}

fn job_condition(conditions: &[Value], kind: &str) -> bool {
    conditions.iter().find(|c| s(c, &["type"]) == kind).is_some_and(|c| s(c, &["status"]) == "True")
}

/// Whether the first pod condition of this type is "True".
fn condition_true(status: &Value, kind: &str) -> bool {
    list(status, &["conditions"]).iter().find(|c| s(c, &["type"]) == kind).is_some_and(|c| s(c, &["status"]) == "True")
}

/// `last = max(last, t)`, where an absent time is Go's zero time.
fn bump(last: &mut Option<DateTime<Utc>>, t: Option<DateTime<Utc>>) {
    if let Some(t) = t {
        if last.is_none_or(|l| l < t) {
            *last = Some(t);
        }
    }
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

fn or_none(v: &str) -> &str {
    if v.is_empty() {
        "<none>"
    } else {
        v
    }
}

fn or_unset(v: Option<&str>) -> &str {
    v.unwrap_or("<unset>")
}

// ---------------------------------------------------------------------------------------------
// JSON access
// ---------------------------------------------------------------------------------------------

/// The value at `path`; JSON `null` counts as absent.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The string at `path`, or "".
fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, path: &[&str]) -> i64 {
    int_or(v, path, 0)
}

fn int_or(v: &Value, path: &[&str], default: i64) -> i64 {
    at(v, path).and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))).unwrap_or(default)
}

fn boolean(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn strings<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a str> {
    list(v, path).iter().filter_map(Value::as_str).collect()
}

fn map_len(v: &Value, path: &[&str]) -> usize {
    at(v, path).and_then(Value::as_object).map_or(0, Map::len)
}

fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    at(o, &["metadata", "annotations", key]).and_then(Value::as_str)
}

/// A `metav1.Time` / `metav1.MicroTime`; absent, unparsable and Go's zero time are `None`.
fn time(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    /// Go's zero `time.Time`, 0001-01-01T00:00:00Z, in Unix seconds.
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    let t = DateTime::parse_from_rfc3339(s(v, path)).ok()?.with_timezone(&Utc);
    (t.timestamp() != GO_ZERO_TIME || t.timestamp_subsec_nanos() != 0).then_some(t)
}

// ---------------------------------------------------------------------------------------------
// HumanDuration
// ---------------------------------------------------------------------------------------------

/// Upstream HumanDuration: a succinct duration with ~2-3 significant figures
/// (`45s`, `5m2s`, `10m`, `3h5m`, `2d3h`, `8d`, `2y10d`, `9y`).
pub fn human_duration(d: Duration) -> String {
    const SECOND: i128 = 1_000_000_000;
    const MINUTE: i128 = 60 * SECOND;
    const HOUR: i128 = 60 * MINUTE;
    // Go durations are integer nanoseconds; divisions below truncate toward zero like Go's.
    let nanos = i128::from(d.num_seconds()) * SECOND + i128::from(d.subsec_nanos());
    let seconds = nanos / SECOND;
    // Allow deviation no more than 2 seconds (excluded) to tolerate machine time inconsistency.
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    /// An RFC 3339 timestamp `secs` seconds before `now()`.
    fn ago(secs: i64) -> String {
        (now() - Duration::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn row(group: &str, resource: &str, obj: Value) -> Vec<Value> {
        let cells = cells(group, resource, &obj, now());
        assert_eq!(cells.len(), columns(group, resource).len(), "{group}/{resource}: one cell per column");
        cells
    }

    fn pod(status: Value) -> Value {
        json!({
            "metadata": {"name": "p", "creationTimestamp": ago(600)},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            "status": status,
        })
    }

    fn pod_status(status: Value) -> (String, String, String) {
        let cells = row("", "pods", pod(status));
        (
            cells[1].as_str().unwrap().to_string(),
            cells[2].as_str().unwrap().to_string(),
            cells[3].as_str().unwrap().to_string(),
        )
    }

    fn strs(v: &[&str]) -> (String, String, String) {
        (v[0].to_string(), v[1].to_string(), v[2].to_string())
    }

    #[test]
    fn human_duration_matches_upstream() {
        let s = Duration::seconds;
        let m = Duration::minutes;
        let h = Duration::hours;
        let ms = Duration::milliseconds;
        let cases = [
            (s(1), "1s"),
            (s(70), "70s"),
            (s(190), "3m10s"),
            (m(70), "70m"),
            (h(47), "47h"),
            (h(49), "2d1h"),
            (h(8 * 24 + 2), "8d"),
            (h(367 * 24), "367d"),
            (h(365 * 2 * 24 + 25), "2y1d"),
            (h(365 * 8 * 24 + 2), "8y"),
            // Boundaries.
            (s(-2), "<invalid>"),
            (s(-2) + Duration::nanoseconds(1), "0s"),
            (s(0), "0s"),
            (s(1) - ms(1), "0s"),
            (m(2) - ms(1), "119s"),
            (m(2), "2m"),
            (m(2) + s(1), "2m1s"),
            (m(10) - ms(1), "9m59s"),
            (m(10), "10m"),
            (m(10) + s(1), "10m"),
            (h(3) - ms(1), "179m"),
            (h(3), "3h"),
            (h(3) + m(1), "3h1m"),
            (h(8) - ms(1), "7h59m"),
            (h(8), "8h"),
            (h(8) + m(59), "8h"),
            (h(48) - ms(1), "47h"),
            (h(48), "2d"),
            (h(49), "2d1h"),
            (h(8 * 24) - ms(1), "7d23h"),
            (h(8 * 24), "8d"),
            (h(8 * 24 + 23), "8d"),
            (h(2 * 365 * 24) - ms(1), "729d"),
            (h(2 * 365 * 24), "2y"),
            (h(2 * 365 * 24 + 23), "2y"),
            (h(2 * 365 * 24 + 23) + m(59), "2y"),
            (h(2 * 365 * 24 + 24) - ms(1), "2y"),
            (h(2 * 365 * 24 + 24), "2y1d"),
            (h(3 * 365 * 24), "3y"),
            (h(7 * 365 * 24), "7y"),
            (h(8 * 365 * 24) - ms(1), "7y364d"),
            (h(8 * 365 * 24), "8y"),
            (h(8 * 365 * 24 + 364 * 24), "8y"),
            (h(9 * 365 * 24), "9y"),
            // Examples from the brief.
            (s(45), "45s"),
            (m(5) + s(2), "5m2s"),
            (h(3) + m(5), "3h5m"),
            (h(51), "2d3h"),
            (h((2 * 365 + 10) * 24), "2y10d"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn pod_columns_and_running_row() {
        let cols = columns("", "pods");
        let names: Vec<_> = cols.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(cols[0].format, "name");
        assert_eq!(cols.iter().map(|c| c.priority).collect::<Vec<_>>(), [0, 0, 0, 0, 0, 1, 1, 1, 1]);

        let obj = json!({
            "metadata": {"name": "web-1", "creationTimestamp": ago(3 * 3600 + 300)},
            "spec": {
                "nodeName": "edge-1",
                "containers": [{"name": "a"}, {"name": "b"}],
                "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/other"}],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.42.0.7",
                "podIPs": [{"ip": "10.42.0.7"}, {"ip": "fd00::7"}],
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "example.com/lb", "status": "True"},
                    {"type": "example.com/other", "status": "False"},
                ],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(100)}}},
                    {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(100)}}},
                ],
            },
        });
        assert_eq!(
            row("", "pods", obj),
            vec![
                json!("web-1"),
                json!("2/2"),
                json!("Running"),
                json!("0"),
                json!("3h5m"),
                json!("10.42.0.7"),
                json!("edge-1"),
                json!("<none>"),
                json!("1/2"),
            ]
        );
    }

    #[test]
    fn pod_pending_and_waiting_reasons() {
        let no_ip = row("", "pods", pod(json!({"phase": "Pending"})));
        assert_eq!(no_ip[1..4], [json!("0/1"), json!("Pending"), json!("0")]);
        assert_eq!(no_ip[5..], [json!("<none>"), json!("<none>"), json!("<none>"), json!("<none>")]);

        let creating = json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]});
        assert_eq!(pod_status(creating), strs(&["0/1", "ContainerCreating", "0"]));

        let gated = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
        ]});
        assert_eq!(pod_status(gated), strs(&["0/1", "SchedulingGated", "0"]));
    }

    #[test]
    fn pod_crash_loop_shows_last_restart() {
        let status = json!({"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}},
        }]});
        assert_eq!(pod_status(status), strs(&["0/1", "CrashLoopBackOff", "3 (5m ago)"]));

        // Restarts without a known last termination time print as a bare count.
        let status = json!({"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": true, "restartCount": 2, "state": {"running": {}},
        }]});
        assert_eq!(pod_status(status), strs(&["1/1", "Running", "2"]));
    }

    #[test]
    fn pod_terminated_containers() {
        let completed = json!({"phase": "Succeeded", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
        }]});
        assert_eq!(pod_status(completed), strs(&["0/1", "Completed", "0"]));

        let error = json!({"phase": "Failed", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }]});
        assert_eq!(pod_status(error), strs(&["0/1", "Error", "0"]));

        let killed = json!({"phase": "Failed", "containerStatuses": [{
            "name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137}},
        }]});
        assert_eq!(pod_status(killed).1, "ExitCode:137");
        let signalled = json!({"phase": "Failed", "containerStatuses": [{
            "name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "signal": 9}},
        }]});
        assert_eq!(pod_status(signalled).1, "Signal:9");

        // One container completed while another still runs: the pod is not "Completed".
        let mut obj = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "side", "ready": true, "restartCount": 0, "state": {"running": {}}},
        ]}));
        obj["spec"]["containers"] = json!([{"name": "app"}, {"name": "side"}]);
        assert_eq!(row("", "pods", obj.clone())[2], json!("NotReady"));
        obj["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        assert_eq!(row("", "pods", obj)[2], json!("Running"));
    }

    #[test]
    fn pod_init_containers() {
        let mut obj = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "init-a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "init-b", "ready": false, "restartCount": 0, "state": {"running": {}}},
        ], "containerStatuses": [
            {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
        ]}));
        obj["spec"]["initContainers"] = json!([{"name": "init-a"}, {"name": "init-b"}]);
        assert_eq!(row("", "pods", obj.clone())[1..4], [json!("0/1"), json!("Init:1/2"), json!("0")]);

        // A waiting init container with a reason.
        obj["status"]["initContainerStatuses"][1]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        obj["status"]["initContainerStatuses"][1]["restartCount"] = json!(4);
        obj["status"]["initContainerStatuses"][1]["lastState"] =
            json!({"terminated": {"exitCode": 1, "finishedAt": ago(120)}});
        assert_eq!(row("", "pods", obj.clone())[2..4], [json!("Init:CrashLoopBackOff"), json!("4 (2m ago)")]);

        // A failed init container.
        obj["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2, "reason": "Error"}});
        assert_eq!(row("", "pods", obj.clone())[2], json!("Init:Error"));
        obj["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 2}});
        assert_eq!(row("", "pods", obj.clone())[2], json!("Init:ExitCode:2"));

        // All init containers done: the app container's waiting reason shows.
        obj["status"]["initContainerStatuses"][1]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        obj["status"]["initContainerStatuses"][1]["restartCount"] = json!(0);
        assert_eq!(row("", "pods", obj)[1..4], [json!("0/1"), json!("PodInitializing"), json!("0")]);
    }

    #[test]
    fn pod_sidecar_counts_as_container() {
        let mut obj = pod(json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(60)}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}],
        }));
        obj["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
        assert_eq!(row("", "pods", obj)[1..4], [json!("2/2"), json!("Running"), json!("1 (60s ago)")]);
    }

    #[test]
    fn pod_terminating_and_node_lost() {
        let mut obj = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
        ]}));
        obj["metadata"]["deletionTimestamp"] = json!(ago(5));
        assert_eq!(row("", "pods", obj.clone())[2], json!("Terminating"));

        // A terminal pod being deleted keeps its phase.
        obj["status"]["phase"] = json!("Succeeded");
        obj["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        assert_eq!(row("", "pods", obj.clone())[2], json!("Completed"));

        let mut lost = pod(json!({"phase": "Running", "reason": "NodeLost"}));
        assert_eq!(row("", "pods", lost.clone())[2], json!("NodeLost"));
        lost["metadata"]["deletionTimestamp"] = json!(ago(5));
        assert_eq!(row("", "pods", lost)[2], json!("Unknown"));
    }

    #[test]
    fn deployment_row() {
        let cols: Vec<_> = columns("apps", "deployments").iter().map(|c| (c.name, c.priority)).collect();
        assert_eq!(
            cols,
            [
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
        );
        let obj = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 3 * 3600)},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web", "tier": "front"},
                    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
                "template": {"spec": {"containers": [
                    {"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}
                ]}},
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            row("apps", "deployments", obj),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d3h"),
                json!("nginx,log"),
                json!("nginx:1.25,busybox"),
                json!("app=web,env in (dev,prod),tier=front"),
            ]
        );
        // Fresh deployment: no status yet, replicas defaulted to 1.
        let fresh = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}}});
        assert_eq!(row("apps", "deployments", fresh)[1..5], [json!("0/1"), json!(0), json!(0), json!("<unknown>")]);
    }

    #[test]
    fn service_rows() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(45)},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.43.0.10",
                "clusterIPs": ["10.43.0.10"],
                "selector": {"app": "web"},
                "ports": [
                    {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP"}
                ],
            },
        });
        assert_eq!(
            row("", "services", svc),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.43.0.10"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("45s"),
                json!("app=web"),
            ]
        );

        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.11",
            "ports": [{"port": 443, "nodePort": 31443}]}});
        assert_eq!(row("", "services", lb.clone())[3], json!("<pending>"));
        let mut lb = lb;
        lb["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.9"}, {"hostname": "a.example"}]}});
        lb["spec"]["externalIPs"] = json!(["203.0.113.5"]);
        let cells = row("", "services", lb);
        assert_eq!(cells[3], json!("192.168.1.9,a.example,203.0.113.5"));
        assert_eq!(cells[4], json!("443:31443/TCP"));
        assert_eq!(cells[6], json!("<none>"));

        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        assert_eq!(
            row("", "services", headless)[1..5],
            [json!("ClusterIP"), json!("None"), json!("<none>"), json!("<none>")]
        );

        let external =
            json!({"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "db.example"}});
        assert_eq!(row("", "services", external)[2..4], [json!("<none>"), json!("db.example")]);
    }

    #[test]
    fn node_row() {
        let node = json!({
            "metadata": {"name": "edge-1", "creationTimestamp": ago(10 * 86400),
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true",
                    "kubernetes.io/hostname": "edge-1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.20"}, {"type": "Hostname", "address": "edge-1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1+kelp", "osImage": "Alpine Linux v3.20",
                    "kernelVersion": "6.6.31", "containerRuntimeVersion": "containerd://1.7.17"},
            },
        });
        assert_eq!(
            row("", "nodes", node),
            vec![
                json!("edge-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,master"),
                json!("10d"),
                json!("v1.33.1+kelp"),
                json!("192.168.1.20"),
                json!("<none>"),
                json!("Alpine Linux v3.20"),
                json!("6.6.31"),
                json!("containerd://1.7.17"),
            ]
        );
        let bare = json!({"metadata": {"name": "n", "labels": {"kubernetes.io/role": "worker"}},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let cells = row("", "nodes", bare);
        assert_eq!(cells[1..3], [json!("NotReady"), json!("worker")]);
        assert_eq!(cells[7], json!("<unknown>"));
        assert_eq!(row("", "nodes", json!({"metadata": {"name": "n"}}))[1..3], [json!("Unknown"), json!("<none>")]);
    }

    #[test]
    fn job_and_cronjob_rows() {
        let job = json!({
            "metadata": {"name": "backup", "creationTimestamp": ago(600)},
            "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                "template": {"spec": {"containers": [{"name": "b", "image": "busybox"}]}}},
            "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(540),
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]},
        });
        assert_eq!(
            row("batch", "jobs", job),
            vec![
                json!("backup"),
                json!("Complete"),
                json!("1/1"),
                json!("60s"),
                json!("10m"),
                json!("b"),
                json!("busybox"),
                json!("batch.kubernetes.io/controller-uid=abc"),
            ]
        );
        let running = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3},
            "status": {"active": 3, "startTime": ago(200)}});
        assert_eq!(row("batch", "jobs", running)[1..4], [json!("Running"), json!("0/1 of 3"), json!("3m20s")]);
        let suspended = json!({"metadata": {"name": "j"}, "spec": {"completions": 5},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(row("batch", "jobs", suspended)[1..4], [json!("Suspended"), json!("0/5"), json!("")]);

        let cron = json!({
            "metadata": {"name": "nightly", "creationTimestamp": ago(3 * 86400)},
            "spec": {"schedule": "0 3 * * *", "suspend": false,
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3600)},
        });
        assert_eq!(
            row("batch", "cronjobs", cron),
            vec![
                json!("nightly"),
                json!("0 3 * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("60m"),
                json!("3d"),
                json!("b"),
                json!("busybox"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn event_rows() {
        let event = json!({
            "metadata": {"name": "p.17f", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "message": "Back-off restarting failed container\n", "type": "Warning",
            "source": {"component": "kubelet", "host": "edge-1"},
            "firstTimestamp": ago(3600), "lastTimestamp": ago(30), "count": 12,
        });
        assert_eq!(
            row("", "events", event),
            vec![
                json!("30s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/p"),
                json!("spec.containers{app}"),
                json!("kubelet, edge-1"),
                json!("Back-off restarting failed container"),
                json!("60m"),
                json!(12),
                json!("p.17f"),
            ]
        );
        let cols = columns("", "events");
        assert_eq!(cols[0].name, "Last Seen");
        assert_eq!((cols[9].name, cols[9].format, cols[9].priority), ("Name", "name", 1));

        // New-style event: eventTime, series, reporting controller.
        let event = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node", "name": "edge-1"},
            "reason": "Started", "message": "ok", "type": "Normal",
            "eventTime": "2025-01-01T11:00:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2025-01-01T11:59:00.123456Z"},
            "reportingComponent": "kelp-controller", "reportingInstance": "kelp-0",
        });
        let cells = row("", "events", event);
        // 59.88s truncates to 59s, like Go's int(d.Seconds()).
        assert_eq!(cells[0], json!("59s"));
        assert_eq!(cells[5], json!("kelp-controller, kelp-0"));
        assert_eq!(cells[7..9], [json!("60m"), json!(4)]);

        let v1 = json!({
            "metadata": {"name": "e"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet", "note": "Scaled up", "type": "Normal",
            "eventTime": ago(90), "reportingController": "deployment-controller",
        });
        let cells = row("events.k8s.io", "events", v1);
        assert_eq!(cells[..4], [json!("90s"), json!("Normal"), json!("ScalingReplicaSet"), json!("deployment/web")]);
        assert_eq!(cells[5..9], [json!("deployment-controller"), json!("Scaled up"), json!("90s"), json!(1)]);
    }

    #[test]
    fn small_resources() {
        let meta = json!({"name": "x", "creationTimestamp": ago(120)});
        let cm = json!({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(row("", "configmaps", cm), vec![json!("x"), json!(3), json!("2m")]);
        let secret = json!({"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(row("", "secrets", secret), vec![json!("x"), json!("kubernetes.io/tls"), json!(2), json!("2m")]);
        let ns = json!({"metadata": meta, "status": {"phase": "Active"}});
        assert_eq!(row("", "namespaces", ns), vec![json!("x"), json!("Active"), json!("2m")]);
        let sa = json!({"metadata": meta});
        assert_eq!(row("", "serviceaccounts", sa), vec![json!("x"), json!(0), json!("2m")]);
        let lease = json!({"metadata": meta, "spec": {"holderIdentity": "kelp-0_abc"}});
        assert_eq!(row("coordination.k8s.io", "leases", lease), vec![json!("x"), json!("kelp-0_abc"), json!("2m")]);
        let sts = json!({"metadata": meta, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "db", "image": "pg"}]}}},
            "status": {"readyReplicas": 2}});
        assert_eq!(
            row("apps", "statefulsets", sts),
            vec![json!("x"), json!("2/2"), json!("2m"), json!("db"), json!("pg")]
        );
        let rs = json!({"metadata": meta, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}}},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(row("apps", "replicasets", rs)[..4], [json!("x"), json!(2), json!(2), json!(1)]);
        let ds = json!({"metadata": meta, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "c", "image": "i"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}});
        assert_eq!(
            row("apps", "daemonsets", ds),
            vec![
                json!("x"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("2m"),
                json!("c"),
                json!("i"),
                json!("app=a")
            ]
        );
        let rb = json!({"metadata": meta, "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [
            {"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"}, {"kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]});
        assert_eq!(
            row("rbac.authorization.k8s.io", "clusterrolebindings", rb),
            vec![
                json!("x"),
                json!("ClusterRole/view"),
                json!("2m"),
                json!("alice, bob"),
                json!("ops"),
                json!("ci/builder")
            ]
        );
        let pdb = json!({"metadata": meta, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            row("policy", "poddisruptionbudgets", pdb),
            vec![json!("x"), json!("50%"), json!("N/A"), json!(1), json!("2m")]
        );
        let pc = json!({"metadata": meta, "value": 1000, "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            row("scheduling.k8s.io", "priorityclasses", pc),
            vec![json!("x"), json!(1000), json!(false), json!("2m"), json!("PreemptLowerPriority")]
        );
        let sc = json!({"metadata": {"name": "local-path", "creationTimestamp": ago(120),
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            row("storage.k8s.io", "storageclasses", sc),
            vec![
                json!("local-path (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("2m")
            ]
        );
        let np = json!({"metadata": meta, "spec": {"podSelector": {}}});
        assert_eq!(row("networking.k8s.io", "networkpolicies", np), vec![json!("x"), json!("<none>"), json!("2m")]);
        let ic = json!({"metadata": meta, "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
        assert_eq!(
            row("networking.k8s.io", "ingressclasses", ic),
            vec![json!("x"), json!("k8s.io/ingress-nginx"), json!("IngressParameters.k8s.example.com/p"), json!("2m")]
        );
        let cr = json!({"metadata": {"name": "x", "creationTimestamp": ago(120), "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": true}]}, "revision": 3});
        assert_eq!(
            row("apps", "controllerrevisions", cr),
            vec![json!("x"), json!("daemonset.apps/ds"), json!(3), json!("2m")]
        );
        let rc =
            json!({"metadata": meta, "spec": {"replicas": 2, "selector": {"app": "a"}}, "status": {"replicas": 2}});
        assert_eq!(row("", "replicationcontrollers", rc)[..4], [json!("x"), json!(2), json!(2), json!(0)]);
        assert_eq!(row("", "replicationcontrollers", json!({"metadata": meta}))[7], json!("<none>"));
    }

    #[test]
    fn storage_rows() {
        let pv = json!({"metadata": {"name": "pv1", "creationTimestamp": ago(60)},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "db", "name": "data"},
                "storageClassName": "local", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        assert_eq!(
            row("", "persistentvolumes", pv),
            vec![
                json!("pv1"),
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("db/data"),
                json!("local"),
                json!("<unset>"),
                json!(""),
                json!("60s"),
                json!("Filesystem")
            ]
        );
        let pvc = json!({"metadata": {"name": "data", "creationTimestamp": ago(60)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "local", "volumeName": "pv1", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}});
        assert_eq!(
            row("", "persistentvolumeclaims", pvc),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv1"),
                json!("10Gi"),
                json!("RWO"),
                json!("local"),
                json!("<unset>"),
                json!("60s"),
                json!("Filesystem")
            ]
        );
        let pending = json!({"metadata": {"name": "data", "deletionTimestamp": ago(1)}, "spec": {}, "status": {"phase": "Pending"}});
        assert_eq!(
            row("", "persistentvolumeclaims", pending)[..6],
            [json!("data"), json!("Terminating"), json!(""), json!(""), json!(""), json!("")]
        );
        let quota = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "10", "limits.memory": "2Gi", "requests.cpu": "1", "limits.cpu": "2"},
            "used": {"pods": "3", "limits.cpu": "500m", "requests.cpu": "250m"}}});
        assert_eq!(
            row("", "resourcequotas", quota)[1..3],
            [json!("pods: 3/10, requests.cpu: 250m/1"), json!("limits.cpu: 500m/2, limits.memory: 0/2Gi")]
        );
    }

    #[test]
    fn network_rows() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(row("", "endpoints", ep)[1], json!("10.42.0.5:80,10.42.0.6:80,10.42.0.5:443 + 1 more..."));
        let v6 = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 80}]}]});
        assert_eq!(row("", "endpoints", v6)[1], json!("[fd00::5]:80"));
        assert_eq!(row("", "endpoints", json!({"metadata": {"name": "e"}}))[1], json!("<none>"));

        let eps = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "metrics"}],
            "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}]});
        assert_eq!(
            row("discovery.k8s.io", "endpointslices", eps)[1..4],
            [json!("IPv4"), json!("80,metrics"), json!("10.42.0.5,10.42.0.6")]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
        assert_eq!(row("discovery.k8s.io", "endpointslices", empty)[2..4], [json!("<unset>"), json!("<unset>")]);

        let ing = json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": "traefik",
            "rules": [{"host": "a.example"}, {}, {"host": "b.example"}, {"host": "c.example"}, {"host": "d.example"}],
            "tls": [{"hosts": ["a.example"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.20"}, {"ip": "192.168.1.10"}]}}});
        assert_eq!(
            row("networking.k8s.io", "ingresses", ing)[1..5],
            [
                json!("traefik"),
                json!("a.example,b.example,c.example + 2 more..."),
                json!("192.168.1.10,192.168.1.20"),
                json!("80, 443")
            ]
        );
        let bare = json!({"metadata": {"name": "i"}, "spec": {"rules": [{"http": {}}]}});
        assert_eq!(
            row("networking.k8s.io", "ingresses", bare)[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
    }

    #[test]
    fn hpa_row() {
        let hpa = json!({"metadata": {"name": "web"}, "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
        ]},
        "status": {"currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12, "averageValue": "12m"}}},
        ]}});
        assert_eq!(
            row("autoscaling", "horizontalpodautoscalers", hpa)[1..6],
            [
                json!("Deployment/web"),
                json!("cpu: 12%/80%, memory: <unknown>/100Mi + 1 more..."),
                json!("1"),
                json!(5),
                json!(2)
            ]
        );
        let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "web"}, "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
        assert_eq!(
            row("autoscaling", "horizontalpodautoscalers", v1)[2..4],
            [json!("cpu: <unknown>/50%"), json!("<unset>")]
        );
    }

    #[test]
    fn selectors() {
        let sel = |v: Value| format_label_selector(Some(&v));
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(sel(json!({})), "<none>");
        assert_eq!(
            sel(json!({"matchExpressions": [
                {"key": "b", "operator": "DoesNotExist"}, {"key": "a", "operator": "Exists"},
                {"key": "c", "operator": "NotIn", "values": ["z", "y"]}]})),
            "a,!b,c notin (y,z)"
        );
        assert_eq!(sel(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})), "<error>");
        assert_eq!(sel(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})), "<error>");
        assert_eq!(sel(json!({"matchLabels": {"bad key": "v"}})), "<error>");
        assert_eq!(selector_string(Some(&json!({"matchLabels": {"a": "b c"}}))), Err(()));
        assert_eq!(format_labels(Some(&json!({"a": "1", "a.b": "2"}))), "a.b=2,a=1");
    }

    #[test]
    fn default_and_generic_tables() {
        for (group, resource) in [
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("", "limitranges"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
        ] {
            let cols = columns(group, resource);
            assert_eq!(
                cols.iter().map(|c| (c.name, c.type_)).collect::<Vec<_>>(),
                [("Name", "string"), ("Created At", "date")]
            );
            let obj = json!({"metadata": {"name": "n", "creationTimestamp": "2024-03-04T05:06:07Z"}});
            assert_eq!(row(group, resource, obj), vec![json!("n"), json!("2024-03-04T05:06:07Z")]);
        }
        let cols = columns("example.com", "widgets");
        assert_eq!(cols.iter().map(|c| (c.name, c.type_)).collect::<Vec<_>>(), [("Name", "string"), ("Age", "date")]);
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": ago(8 * 86400 + 5)}});
        assert_eq!(row("example.com", "widgets", obj), vec![json!("w"), json!("8d")]);
        // Go's zero time and a missing timestamp are unknown.
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "0001-01-01T00:00:00Z"}});
        assert_eq!(row("example.com", "widgets", obj), vec![json!("w"), json!("<unknown>")]);
        // A timestamp in the future by more than a second is invalid.
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": ago(-5)}});
        assert_eq!(row("", "configmaps", obj)[2], json!("<invalid>"));
    }

    #[test]
    fn every_printer_has_one_cell_per_column() {
        let resources = [
            ("", "pods"),
            ("", "podtemplates"),
            ("", "replicationcontrollers"),
            ("", "services"),
            ("", "endpoints"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "namespaces"),
            ("", "nodes"),
            ("", "events"),
            ("events.k8s.io", "events"),
            ("", "serviceaccounts"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "controllerrevisions"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("discovery.k8s.io", "endpointslices"),
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "ingressclasses"),
            ("networking.k8s.io", "networkpolicies"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("coordination.k8s.io", "leases"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("storage.k8s.io", "storageclasses"),
            ("storage.k8s.io", "csidrivers"),
            ("storage.k8s.io", "csinodes"),
            ("storage.k8s.io", "volumeattachments"),
            ("policy", "poddisruptionbudgets"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("node.k8s.io", "runtimeclasses"),
            ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
            ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
            ("certificates.k8s.io", "certificatesigningrequests"),
            ("example.com", "things"),
        ];
        for (group, resource) in resources {
            for obj in
                [json!({}), json!({"metadata": {"name": "n", "creationTimestamp": ago(1)}, "spec": {}, "status": {}})]
            {
                let cells = row(group, resource, obj);
                assert!(cells.iter().all(|c| !c.is_null()), "{group}/{resource}: {cells:?}");
            }
            let cols = columns(group, resource);
            assert_eq!(cols.iter().filter(|c| c.format == "name" && c.name == "Name").count(), 1, "{resource}");
            assert!(cols.iter().all(|c| ["string", "integer", "date", "number", "boolean"].contains(&c.type_)));
        }
    }

    #[test]
    fn column_definitions_json() {
        let defs = column_definitions(&columns("", "namespaces"));
        assert_eq!(defs.as_array().unwrap().len(), 3);
        assert_eq!(
            defs[1],
            json!({"name": "Status", "type": "string", "format": "", "description": "The status of the namespace", "priority": 0})
        );
        assert_eq!(defs[0]["format"], json!("name"));
        assert!(defs[0]["description"].as_str().unwrap().starts_with("Name must be unique within a namespace."));
        let pod = column_definitions(&columns("", "pods"));
        assert_eq!(pod[5]["priority"], json!(1));
    }

    #[test]
    fn certificate_signing_request_row() {
        let csr = json!({"metadata": {"name": "csr-1", "creationTimestamp": ago(30)},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
        assert_eq!(
            row("certificates.k8s.io", "certificatesigningrequests", csr),
            vec![
                json!("csr-1"),
                json!("30s"),
                json!("kubernetes.io/kube-apiserver-client"),
                json!("alice"),
                json!("24h"),
                json!("Approved,Issued")
            ]
        );
    }
}
