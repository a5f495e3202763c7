# modules/publisher on a mocked provider: what the publisher and prune
# roles may do, and who may assume them.

mock_provider "aws" {
  mock_resource "aws_iam_policy" {
    defaults = {
      arn = "arn:aws:iam::123456789012:policy/registry-test"
    }
  }
}

variables {
  name             = "registry-test"
  bucket_arn       = "arn:aws:s3:::registry-test"
  distribution_arn = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"
  publisher_principals = {
    github_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    github_subjects          = ["repo:example/appliances:ref:refs/heads/main"]
  }
}

run "publisher_never_deletes_registry_content" {
  module {
    source = "./modules/publisher"
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_policy.publisher.policy).Statement :
      !contains(flatten([s.Action]), "s3:DeleteObject") || flatten([s.Resource]) == ["arn:aws:s3:::registry-test/registry-probe/*"]
    ])
    error_message = "The publisher may delete only its probe objects (registry-probe/*), never images/* or streams/v1/*."
  }

  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_policy.publisher.policy).Statement : [for a in flatten([s.Action]) : !strcontains(a, "*") && !strcontains(a, "DeleteObjectVersion")]
    ]))
    error_message = "No wildcard actions and no DeleteObjectVersion."
  }

  assert {
    condition = (
      local.publisher_policy.ReadWriteRegistry.Action == ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"] &&
      local.publisher_policy.ReadWriteRegistry.Resource == [
        "arn:aws:s3:::registry-test/images/*",
        "arn:aws:s3:::registry-test/streams/v1/*",
        "arn:aws:s3:::registry-test/registry-probe/*",
      ]
    )
    error_message = "The publisher reads and writes the image files, the catalog and its probe objects."
  }

  assert {
    condition = (
      local.publisher_policy.ListRegistryKeys.Resource == var.bucket_arn &&
      local.publisher_policy.ListRegistryKeys.Condition.StringLike["s3:prefix"] == ["images/*", "streams/v1/*", "registry-probe/*"]
    )
    error_message = "Listing is limited to the registry prefixes."
  }

  assert {
    condition     = local.publisher_policy.InvalidateCatalog.Action == "cloudfront:CreateInvalidation" && local.publisher_policy.InvalidateCatalog.Resource == var.distribution_arn
    error_message = "The publisher may invalidate the one distribution."
  }

  assert {
    condition = (
      jsondecode(aws_iam_role.publisher[0].assume_role_policy).Statement[0].Action == "sts:AssumeRoleWithWebIdentity" &&
      jsondecode(aws_iam_role.publisher[0].assume_role_policy).Statement[0].Principal.Federated == var.publisher_principals.github_oidc_provider_arn &&
      jsondecode(aws_iam_role.publisher[0].assume_role_policy).Statement[0].Condition.StringEquals["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com" &&
      jsondecode(aws_iam_role.publisher[0].assume_role_policy).Statement[0].Condition.StringLike["token.actions.githubusercontent.com:sub"] == ["repo:example/appliances:ref:refs/heads/main"] &&
      length(jsondecode(aws_iam_role.publisher[0].assume_role_policy).Statement) == 1
    )
    error_message = "Only the named GitHub repository and ref may assume the publisher role."
  }

  assert {
    condition     = aws_iam_role_policy_attachment.publisher[0].policy_arn == aws_iam_policy.publisher.arn && aws_iam_role_policy_attachment.publisher[0].role == aws_iam_role.publisher[0].name
    error_message = "The publisher role carries the publisher policy."
  }
}

run "prune_deletes_image_files_only" {
  module {
    source = "./modules/publisher"
  }

  assert {
    condition = (
      local.prune_policy.DeleteImageFiles.Action == "s3:DeleteObject" &&
      local.prune_policy.DeleteImageFiles.Resource == "arn:aws:s3:::registry-test/images/*" &&
      alltrue([for sid, s in local.prune_policy : sid == "DeleteImageFiles" || !contains(flatten([s.Action]), "s3:DeleteObject")])
    )
    error_message = "prune may delete image files, and nothing else."
  }

  assert {
    condition = (
      local.prune_policy.ReadWriteCatalog.Action == ["s3:GetObject", "s3:PutObject"] &&
      local.prune_policy.ReadWriteCatalog.Resource == "arn:aws:s3:::registry-test/streams/v1/*" &&
      alltrue([for sid, s in local.prune_policy : sid == "ReadWriteCatalog" || !contains(flatten([s.Action]), "s3:PutObject")])
    )
    error_message = "prune rewrites the catalog and uploads nothing else."
  }

  assert {
    condition     = aws_iam_role.prune[0].assume_role_policy == aws_iam_role.publisher[0].assume_role_policy
    error_message = "Without prune_principals, the publisher's principals may assume the prune role."
  }
}

run "prefix_kms_aws_principals_no_cdn" {
  module {
    source = "./modules/publisher"
  }

  variables {
    registry_prefix      = "incus/stable"
    distribution_arn     = null
    kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    publisher_principals = { aws_arns = ["arn:aws:iam::123456789012:role/release"] }
    prune_principals     = { aws_arns = ["arn:aws:iam::123456789012:role/cleanup"] }
  }

  assert {
    condition = (
      local.publisher_policy.DeleteConditionalWriteProbe.Resource == "arn:aws:s3:::registry-test/incus/stable/registry-probe/*" &&
      local.prune_policy.DeleteImageFiles.Resource == "arn:aws:s3:::registry-test/incus/stable/images/*" &&
      local.publisher_policy.ListRegistryKeys.Condition.StringLike["s3:prefix"][0] == "incus/stable/images/*"
    )
    error_message = "Every resource and listing prefix carries the registry prefix."
  }

  assert {
    condition     = !contains(keys(local.publisher_policy), "InvalidateCatalog") && !contains(keys(local.prune_policy), "InvalidateCatalog")
    error_message = "No distribution, no CloudFront permission."
  }

  assert {
    condition     = local.publisher_policy.UseBucketKey.Resource == var.kms_key_arn && local.prune_policy.UseBucketKey.Action == ["kms:GenerateDataKey", "kms:Decrypt"]
    error_message = "With SSE-KMS, both roles may use the key."
  }

  assert {
    condition = (
      jsondecode(aws_iam_role.publisher[0].assume_role_policy).Statement[0].Principal.AWS == ["arn:aws:iam::123456789012:role/release"] &&
      jsondecode(aws_iam_role.prune[0].assume_role_policy).Statement[0].Principal.AWS == ["arn:aws:iam::123456789012:role/cleanup"]
    )
    error_message = "Each role trusts its own principals."
  }
}

run "no_principals_policies_only" {
  module {
    source = "./modules/publisher"
  }

  variables {
    publisher_principals = null
  }

  assert {
    condition     = length(aws_iam_role.publisher) == 0 && length(aws_iam_role.prune) == 0 && output.publisher_role_arn == null
    error_message = "Without principals, no role is created."
  }

  assert {
    condition     = output.publisher_policy_arn == aws_iam_policy.publisher.arn
    error_message = "The policies are still there to attach."
  }
}

run "rejects_principals_without_anyone" {
  command = plan
  module {
    source = "./modules/publisher"
  }
  variables {
    publisher_principals = {}
  }
  expect_failures = [var.publisher_principals]
}

run "rejects_wildcard_github_repository" {
  command = plan
  module {
    source = "./modules/publisher"
  }
  variables {
    publisher_principals = {
      github_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
      github_subjects          = ["repo:example/*"]
    }
  }
  expect_failures = [var.publisher_principals]
}
