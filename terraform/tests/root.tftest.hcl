# The root module on a mocked provider: the modules wired together, the
# outputs a user copies, and the MinIO subset.

mock_provider "aws" {
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn                         = "arn:aws:s3:::registry-test"
      bucket_regional_domain_name = "registry-test.s3.eu-west-1.amazonaws.com"
    }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = {
      id          = "E2EXAMPLE"
      arn         = "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"
      domain_name = "d111111abcdef8.cloudfront.net"
    }
  }
  mock_resource "aws_iam_policy" {
    defaults = {
      arn = "arn:aws:iam::123456789012:policy/appliance-registry"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/appliance-registry-publisher"
    }
  }
}

variables {
  bucket_name     = "registry-test"
  registry_prefix = "incus"
  publisher_principals = {
    aws_arns = ["arn:aws:iam::123456789012:root"]
  }
}

run "production" {
  assert {
    condition     = output.incus_remote_add == "incus remote add appliance https://d111111abcdef8.cloudfront.net/incus --protocol simplestreams"
    error_message = "The outputs must give the exact incus remote add line."
  }

  assert {
    condition     = output.bucket_location == "s3://registry-test/incus" && output.bucket_name == "registry-test"
    error_message = "The outputs must give publish's --bucket."
  }

  assert {
    condition     = output.distribution_id == "E2EXAMPLE" && output.distribution_domain_name == "d111111abcdef8.cloudfront.net"
    error_message = "The outputs must give the distribution ID and domain."
  }

  assert {
    condition     = output.publisher_role_arn == "arn:aws:iam::123456789012:role/appliance-registry-publisher" && output.prune_role_arn != null
    error_message = "The outputs must give the publisher and prune roles."
  }
}

run "minio_subset" {
  variables {
    aws_only_resources = false
  }

  assert {
    condition = (
      output.distribution_id == null && output.incus_remote_add == null &&
      output.publisher_role_arn == null && output.publisher_policy_arn == null
    )
    error_message = "aws_only_resources = false creates no CloudFront and no IAM."
  }

  assert {
    condition     = output.bucket_location == "s3://registry-test/incus"
    error_message = "The bucket is still there."
  }
}

run "rejects_bad_prefix" {
  command = plan
  variables {
    registry_prefix = "incus/"
  }
  expect_failures = [var.registry_prefix]
}
